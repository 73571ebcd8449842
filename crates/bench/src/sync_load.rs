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

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use azure_emulator::{EmulatorConfig, RunningEmulator, generate_incidents_for};
use chrono::{SecondsFormat, Utc};
use clap::Parser;
use serde_json::{Value, json};
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
    #[arg(long, default_value_t = 50_000)]
    incidents: usize,
    #[arg(long)]
    database_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
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
    // The baseline pages one deep listing; Graph's `$skip` limit would cut it short (SoCMate
    // itself reads time slices, which never go that deep).
    config.graph_max_skip = None;
    let emulator = RunningEmulator::start(config).await?;
    let http = reqwest::Client::new();

    // The floor: a plain client reading every page the same way.
    let graph_token = emulator_token(
        &http,
        &emulator.url(),
        "https://graph.microsoft.com/.default",
    )
    .await?;
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
            .await?
            .json()
            .await?;
        raw_count += page["value"].as_array().map_or(0, Vec::len);
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
    }
    let raw = t.elapsed();

    let mut envs = azure_env(&emulator.url());
    envs.push(("SOCMATE_SYNC_INTERVAL", "0".to_owned()));
    if let Some(url) = &args.database_url {
        envs.push(("SOCMATE_DATABASE_URL", url.clone()));
    }
    let server = Socmate::start(&args.socmate, &envs).await?;
    let base = server.base.clone();
    let admin = socmate_bench::token(Role::Admin)?;
    let provider = socmate_bench::create_provider(&http, &base).await?;
    let status_url = format!("{base}/api/admin/siem-providers/{provider}/sync");
    let t = Instant::now();
    let started = http.post(&status_url).bearer_auth(&admin).send().await?;
    anyhow::ensure!(
        started.status() == 202,
        "the sync did not start: {}",
        started.status()
    );
    let status = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let status: Value = http
            .get(&status_url)
            .bearer_auth(&admin)
            .send()
            .await?
            .json()
            .await?;
        if status["state"] == "idle" && status["last_finished_at"].is_string() {
            break status;
        }
    };
    let took = t.elapsed();
    anyhow::ensure!(status["last_error"].is_null(), "the sync failed: {status}");
    let fetched = status["fetched"]
        .as_f64()
        .context("the response lacks an expected number")?;
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
        server.peak_rss_bytes() as f64 / 1048576.0
    );
    Ok(())
}
