//! Query proxy overhead: a large Log Analytics result fetched straight from the emulator with a
//! plain HTTP client, against the same result through `socmate serve` (token, query, typed
//! parse, audit, re-serialisation), alternating, in one run. Reports the time ratio and
//! socmate's peak RSS (VmHWM) against the response size.
//!
//! The emulator serves the `SyntheticRows` body (all ten Log Analytics column types, dynamic
//! included) serialised before timing, so the raw download measures the wire, not the
//! emulator's JSON writer. The harness fails when that upstream rate is under 1 GB/s (the
//! ratio would measure the emulator), and when SoCMate misses its targets: at most 1.5× the raw
//! download's time, peak RSS at most 1.5× the body.
//!
//! ```sh
//! cargo build --release --bin socmate --bin query-load
//! ./target/release/query-load --rows 500000 --rounds 5
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use azure_emulator::{EmulatorConfig, PreparedQuery, RunningEmulator, synthetic_rows_response};
use clap::Parser;
use serde_json::json;
use socmate::auth::Role;
use socmate_bench::{CLIENT, SECRET, Socmate, TENANT, WORKSPACE, azure_env, emulator_token};

/// The harness (and the emulator it runs in-process) on the allocator `socmate` runs on: with
/// glibc's, cloning and freeing the emulator's JSON pages spent most of its time in `malloc`,
/// and the upstream, not SoCMate, was measured.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "target/release/socmate")]
    socmate: PathBuf,
    #[arg(long, default_value_t = 500_000)]
    rows: usize,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// Reads a response to its end, counting its bytes without keeping them: both downloads cost
/// the client the same, whatever their size.
async fn drain(mut response: reqwest::Response) -> anyhow::Result<usize> {
    let mut bytes = 0;
    while let Some(chunk) = response.chunk().await? {
        bytes += chunk.len();
    }
    Ok(bytes)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let query = format!("SyntheticRows | take {}", args.rows);
    let mut config = EmulatorConfig::single_tenant(TENANT, CLIENT, SECRET, WORKSPACE);
    config.tenants[0].workspaces[0]
        .prepared
        .push(PreparedQuery {
            query: query.clone(),
            body: synthetic_rows_response(args.rows).into(),
        });
    let emulator = RunningEmulator::start(config).await?;
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

    let (mut raw_times, mut proxied_times) = (Vec::new(), Vec::new());
    // Until socmate's response headers: the query, the download and the transcoding.
    let mut proxied_heads = Vec::new();
    let (mut raw_bytes, mut proxied_bytes) = (0, 0);
    for _ in 0..args.rounds {
        let t = Instant::now();
        let response = http
            .post(format!(
                "{}/v1/workspaces/{WORKSPACE}/query",
                emulator.url()
            ))
            .bearer_auth(&la_token)
            .header("Prefer", "wait=600,include-statistics=true")
            .json(&json!({"query": query, "timespan": "P1D"}))
            .send()
            .await?;
        raw_bytes = drain(response).await?;
        raw_times.push(t.elapsed());

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
        proxied_heads.push(t.elapsed());
        proxied_bytes = drain(response).await?;
        proxied_times.push(t.elapsed());
    }
    raw_times.sort();
    proxied_times.sort();
    proxied_heads.sort();
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
        "  of which until socmate's response headers (median): {:.0} ms",
        median(&proxied_heads).as_secs_f64() * 1000.0
    );
    let ratio = proxied.as_secs_f64() / raw.as_secs_f64();
    let upstream_gb_s = raw_bytes as f64 / raw.as_secs_f64() / 1e9;
    let rss_ratio = hwm as f64 / raw_bytes as f64;
    println!("upstream rate (raw download): {upstream_gb_s:.2} GB/s");
    println!("time ratio socmate / raw: {ratio:.2}");
    println!(
        "socmate peak RSS (VmHWM): {:.1} MiB = {rss_ratio:.2} x the raw response",
        hwm as f64 / 1048576.0,
    );
    anyhow::ensure!(
        upstream_gb_s >= 1.0,
        "the upstream served {upstream_gb_s:.2} GB/s, under 1 GB/s: the ratio would measure the emulator"
    );
    let mut missed = Vec::new();
    if ratio > 1.5 {
        missed.push(format!("time {ratio:.2}x the raw download (target 1.5x)"));
    }
    if rss_ratio > 1.5 {
        missed.push(format!("peak RSS {rss_ratio:.2}x the body (target 1.5x)"));
    }
    anyhow::ensure!(missed.is_empty(), "targets missed: {}", missed.join("; "));
    Ok(())
}
