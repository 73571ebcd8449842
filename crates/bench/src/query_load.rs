//! Query proxy overhead: a large Log Analytics result fetched straight from the emulator with a
//! plain HTTP client, against the same result through `socmate serve` (token, query, typed
//! parse, audit, re-serialisation), alternating, in one run. Reports the time ratio and
//! socmate's peak RSS (VmHWM) against the response size.
//!
//! ```sh
//! cargo build --release --bin socmate --bin query-load
//! ./target/release/query-load --rows 500000 --rounds 3
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use azure_emulator::{EmulatorConfig, RunningEmulator};
use clap::Parser;
use serde_json::json;
use socmate::auth::Role;
use socmate_bench::{CLIENT, SECRET, Socmate, TENANT, WORKSPACE, azure_env, emulator_token};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "target/release/socmate")]
    socmate: PathBuf,
    #[arg(long, default_value_t = 500_000)]
    rows: usize,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let emulator = RunningEmulator::start(EmulatorConfig::single_tenant(
        TENANT, CLIENT, SECRET, WORKSPACE,
    ))
    .await?;
    let server = Socmate::start(&args.socmate, &azure_env(&emulator.url())).await?;
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let token = socmate_bench::token(Role::Analyst)?;
    socmate_bench::create_provider(&http, &base).await?;
    let la_token = emulator_token(
        &http,
        &emulator.url(),
        "https://api.loganalytics.io/.default",
    )
    .await?;
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
            .await?
            .bytes()
            .await?;
        raw_times.push(t.elapsed());
        raw_bytes = body.len();
        drop(body);

        let t = Instant::now();
        let response = http
            .post(format!("{base}/api/siem/query"))
            .bearer_auth(&token)
            .json(&json!({"query": query, "timespan": "P1D", "timeout_s": 600}))
            .send()
            .await?;
        anyhow::ensure!(
            response.status() == 200,
            "socmate answered the query with {}",
            response.status()
        );
        let body = response.bytes().await?;
        proxied_times.push(t.elapsed());
        proxied_bytes = body.len();
    }
    raw_times.sort();
    proxied_times.sort();
    let median = |v: &[Duration]| v[v.len() / 2];
    let (raw, proxied) = (median(&raw_times), median(&proxied_times));
    let hwm = server.peak_rss_bytes();
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
    Ok(())
}
