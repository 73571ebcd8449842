//! Incident sync throughput: a first sync of N incidents (with their alerts) from the emulator's
//! Graph into SQLite or PostgreSQL through a release `socmate serve`, timed from the trigger to
//! the run's end, plus socmate's peak RSS. For reference it also times a plain client walking
//! the same pages, which is the floor the emulator itself imposes.
//!
//! ```sh
//! cargo build --release --bin socmate --bin sync-load
//! ./target/release/sync-load --incidents 50000
//! ./target/release/sync-load --incidents 50000 --database-url postgres://postgres@127.0.0.1:5432/socmate_sync_bench
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use azure_emulator::{EmulatorConfig, RunningEmulator, generate_incidents_for};
use chrono::{SecondsFormat, Utc};
use clap::Parser;
use serde_json::{Value, json};
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
    #[arg(long, default_value_t = 50_000)]
    incidents: usize,
    #[arg(long)]
    database_url: Option<String>,
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut config = EmulatorConfig::single_tenant(TENANT, CLIENT, SECRET, WORKSPACE);
    let start = Utc::now() - chrono::Duration::days(6);
    let (mut incidents, alerts) = generate_incidents_for(TENANT, args.incidents, 1, start);
    let step = chrono::Duration::days(6).num_milliseconds() / (args.incidents as i64 + 1);
    for (i, incident) in incidents.iter_mut().enumerate() {
        let at = start + chrono::Duration::milliseconds(step * (i as i64 + 1));
        incident["createdDateTime"] =
            json!((at - chrono::Duration::minutes(1)).to_rfc3339_opts(SecondsFormat::Millis, true));
        incident["lastUpdateDateTime"] = json!(at.to_rfc3339_opts(SecondsFormat::Millis, true));
    }
    let alert_count = alerts.len();
    config.tenants[0].incidents = incidents;
    config.tenants[0].alerts = alerts;
    let emulator = RunningEmulator::start(config).await.unwrap();
    let http = reqwest::Client::new();

    // The floor: a plain client reading every page the same way.
    let token: Value = http
        .post(format!("{}/{TENANT}/oauth2/v2.0/token", emulator.url()))
        .form(&[
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let graph_token = token["access_token"].as_str().unwrap().to_owned();
    let since = (Utc::now() - chrono::Duration::days(7)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let t = Instant::now();
    let mut next = Some(format!(
        "{}/v1.0/security/incidents?$filter=lastUpdateDateTime%20ge%20{since}&$top=50&$expand=alerts",
        emulator.url()
    ));
    let mut raw_count = 0;
    while let Some(url) = next {
        let page: Value = http
            .get(&url)
            .bearer_auth(&graph_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        raw_count += page["value"].as_array().map_or(0, Vec::len);
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
    }
    let raw = t.elapsed();

    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut cmd = Command::new(&args.socmate);
    cmd.arg("serve")
        .env("SOCMATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("SOCMATE_DATA_DIR", data.path())
        .env("SOCMATE_JWT_SECRET", JWT_SECRET)
        .env(
            "SOCMATE_MASTER_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .env("SOCMATE_SYNC_INTERVAL", "0")
        .env("SOCMATE_AZURE_AUTHORITY_HOST", emulator.url())
        .env("SOCMATE_AZURE_LOG_ANALYTICS_ENDPOINT", emulator.url())
        .env("SOCMATE_AZURE_GRAPH_ENDPOINT", emulator.url())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    if let Some(url) = &args.database_url {
        cmd.env("SOCMATE_DATABASE_URL", url);
    }
    let mut server = cmd
        .spawn()
        .expect("start socmate (build it with --release first)");
    let ready = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            ready.elapsed() < Duration::from_secs(30),
            "socmate did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let admin = JwtKeys::from_secret(JWT_SECRET.as_bytes())
        .unwrap()
        .issue("bench@example.com", Role::Admin, Duration::from_secs(7200))
        .unwrap();
    let created: Value = http
        .post(format!("{base}/api/admin/siem-providers"))
        .bearer_auth(&admin)
        .json(&json!({"name": "Bench", "provider_type": "sentinel", "workspace_id": WORKSPACE, "tenant_id": TENANT,
            "client_id": CLIENT, "client_secret": SECRET}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let status_url = format!(
        "{base}/api/admin/siem-providers/{}/sync",
        created["id"].as_str().unwrap()
    );
    let t = Instant::now();
    assert_eq!(
        http.post(&status_url)
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    let status = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let status: Value = http
            .get(&status_url)
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["state"] == "idle" && status["last_finished_at"].is_string() {
            break status;
        }
    };
    let took = t.elapsed();
    assert_eq!(status["last_error"], Value::Null, "{status}");
    let fetched = status["fetched"].as_f64().unwrap();
    let backend = if args.database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!("backend: {backend}");
    println!("incidents: {} (with {alert_count} alerts)", args.incidents);
    println!(
        "plain client paging the emulator: {raw_count} incidents in {:.1} s",
        raw.as_secs_f64()
    );
    println!(
        "socmate first sync: {fetched} incidents in {:.1} s = {:.0} incidents/s",
        took.as_secs_f64(),
        fetched / took.as_secs_f64()
    );
    println!(
        "socmate peak RSS (VmHWM): {:.1} MiB",
        peak_rss_kib(server.id()) as f64 / 1024.0
    );
    let _ = server.kill();
    let _ = server.wait();
}
