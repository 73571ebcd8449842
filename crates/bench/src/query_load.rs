//! Query proxy overhead: a large Log Analytics result fetched straight from the emulator with a
//! plain HTTP client, against the same result through `socmate serve` (token, query, typed
//! parse, audit, re-serialisation), alternating, in one run. Reports the time ratio and
//! socmate's peak RSS (VmHWM) against the response size.
//!
//! ```sh
//! cargo build --release --bin socmate --bin query-load
//! ./target/release/query-load --rows 500000 --rounds 3
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use azure_emulator::{EmulatorConfig, RunningEmulator};
use clap::Parser;
use serde_json::json;
use socmate::auth::{JwtKeys, Role};

const JWT_SECRET: &str = "bench-jwt-secret-long-enough-0123456789abcdef";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "b1a3c5d7-0000-4000-8000-00000000a001";
const SECRET: &str = "bench-secret-value-0000";
const WORKSPACE: &str = "c0ffee00-0000-4000-8000-00000000beef";

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "target/release/socmate")]
    socmate: PathBuf,
    #[arg(long, default_value_t = 500_000)]
    rows: usize,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let emulator = RunningEmulator::start(EmulatorConfig::single_tenant(
        TENANT, CLIENT, SECRET, WORKSPACE,
    ))
    .await
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = Command::new(&args.socmate)
        .arg("serve")
        .env("SOCMATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("SOCMATE_DATA_DIR", data.path())
        .env("SOCMATE_JWT_SECRET", JWT_SECRET)
        .env(
            "SOCMATE_MASTER_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .env("SOCMATE_AZURE_AUTHORITY_HOST", emulator.url())
        .env("SOCMATE_AZURE_LOG_ANALYTICS_ENDPOINT", emulator.url())
        .env("SOCMATE_AZURE_GRAPH_ENDPOINT", emulator.url())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start socmate (build it with --release first)");
    let http = reqwest::Client::new();
    let ready = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            ready.elapsed() < Duration::from_secs(30),
            "socmate did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token = JwtKeys::from_secret(JWT_SECRET.as_bytes())
        .unwrap()
        .issue(
            "bench@example.com",
            Role::Analyst,
            Duration::from_secs(3600),
        )
        .unwrap();
    let admin = JwtKeys::from_secret(JWT_SECRET.as_bytes())
        .unwrap()
        .issue("bench@example.com", Role::Admin, Duration::from_secs(3600))
        .unwrap();
    let created = http
        .post(format!("{base}/api/admin/siem-providers"))
        .bearer_auth(&admin)
        .json(&json!({"name": "Bench", "provider_type": "sentinel", "workspace_id": WORKSPACE, "tenant_id": TENANT,
            "client_id": CLIENT, "client_secret": SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let la_token: serde_json::Value = http
        .post(format!("{}/{TENANT}/oauth2/v2.0/token", emulator.url()))
        .form(&[
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("scope", "https://api.loganalytics.io/.default"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let la_token = la_token["access_token"].as_str().unwrap().to_owned();
    let query = format!("SyntheticRows | take {}", args.rows);

    let (mut raw_times, mut proxied_times) = (Vec::new(), Vec::new());
    let (mut raw_bytes, mut proxied_bytes) = (0, 0);
    for _ in 0..args.rounds {
        let t = Instant::now();
        let body = http
            .post(format!(
                "{}/v1/workspaces/{WORKSPACE}/query",
                emulator.url()
            ))
            .bearer_auth(&la_token)
            .header("Prefer", "wait=600,include-statistics=true")
            .json(&json!({"query": query, "timespan": "P1D"}))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        raw_times.push(t.elapsed());
        raw_bytes = body.len();
        drop(body);

        let t = Instant::now();
        let response = http
            .post(format!("{base}/api/siem/query"))
            .bearer_auth(&token)
            .json(&json!({"query": query, "timespan": "P1D", "timeout_s": 600}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.unwrap();
        proxied_times.push(t.elapsed());
        proxied_bytes = body.len();
    }
    raw_times.sort();
    proxied_times.sort();
    let median = |v: &[Duration]| v[v.len() / 2];
    let (raw, proxied) = (median(&raw_times), median(&proxied_times));
    let hwm = peak_rss_kib(server.id()) * 1024;
    println!("rows: {}", args.rows);
    println!(
        "raw response from the emulator: {:.1} MiB",
        raw_bytes as f64 / 1048576.0
    );
    println!(
        "socmate response: {:.1} MiB",
        proxied_bytes as f64 / 1048576.0
    );
    println!(
        "raw fetch (median of {}): {:.0} ms",
        args.rounds,
        raw.as_secs_f64() * 1000.0
    );
    println!(
        "through socmate (median of {}): {:.0} ms",
        args.rounds,
        proxied.as_secs_f64() * 1000.0
    );
    println!(
        "time ratio socmate / raw: {:.2}",
        proxied.as_secs_f64() / raw.as_secs_f64()
    );
    println!(
        "socmate peak RSS (VmHWM): {:.1} MiB = {:.2} x the raw response",
        hwm as f64 / 1048576.0,
        hwm as f64 / raw_bytes as f64
    );
    let _ = server.kill();
    let _ = server.wait();
}
