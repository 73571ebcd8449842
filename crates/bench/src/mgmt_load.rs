//! Management-API load harness: starts a release `socmate serve` as its own process, then drives
//! list, detail and create with concurrent clients for a fixed time and reports throughput and
//! latency percentiles as a Markdown table row per scenario.
//!
//! ```sh
//! cargo build --release --bin socmate --bin mgmt-load
//! ./target/release/mgmt-load --seconds 10 --concurrency 32
//! ./target/release/mgmt-load --database-url postgres://postgres@127.0.0.1/socmate_bench
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use socmate::auth::Role;
use socmate_bench::Socmate;

#[derive(Parser)]
struct Args {
    /// The socmate binary to load.
    #[arg(long, default_value = "target/release/socmate")]
    socmate: PathBuf,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Providers stored before the list/detail scenarios.
    #[arg(long, default_value_t = 20)]
    providers: usize,
    /// PostgreSQL URL; SQLite in a temp dir when absent.
    #[arg(long)]
    database_url: Option<String>,
}

struct Outcome {
    requests: usize,
    errors: usize,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let envs: Vec<(&str, String)> = args
        .database_url
        .iter()
        .map(|u| ("SOCMATE_DATABASE_URL", u.clone()))
        .collect();
    let server = Socmate::start(&args.socmate, &envs).await?;
    let base = server.base.clone();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let token = socmate_bench::token(Role::Admin)?;
    let api = format!("{base}/api/admin/siem-providers");
    let mut ids = Vec::new();
    for i in 0..args.providers {
        let created: serde_json::Value = http
            .post(&api)
            .bearer_auth(&token)
            .json(&body(&format!("seed-{i}")))
            .send()
            .await?
            .json()
            .await?;
        ids.push(
            created["id"]
                .as_str()
                .context("the response lacks an expected field")?
                .to_owned(),
        );
    }
    let backend = if args.database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "| backend | scenario | clients | requests | errors | req/s | p50 ms | p99 ms | max ms |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let counter = Arc::new(AtomicU64::new(0));
    for scenario in ["list", "detail", "create"] {
        let outcome = run(&args, scenario, &http, &api, &token, &ids, &counter).await;
        let mut sorted = outcome.latencies;
        sorted.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "| {backend} | {scenario} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} |",
            args.concurrency,
            outcome.requests,
            outcome.errors,
            outcome.requests as f64 / outcome.elapsed.as_secs_f64(),
            ms(percentile(&sorted, 50.0)),
            ms(percentile(&sorted, 99.0)),
            ms(sorted.last().copied().unwrap_or_default()),
        );
    }
    Ok(())
}

fn body(name: &str) -> serde_json::Value {
    socmate_bench::provider_body(name)
}

async fn run(
    args: &Args,
    scenario: &str,
    http: &reqwest::Client,
    api: &str,
    token: &str,
    ids: &[String],
    counter: &Arc<AtomicU64>,
) -> Outcome {
    let started = Instant::now();
    let until = started + Duration::from_secs(args.seconds);
    let workers = (0..args.concurrency).map(|w| {
        let counter = Arc::clone(counter);
        async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            let mut i = w;
            while Instant::now() < until {
                let request = match scenario {
                    "list" => http.get(api),
                    "detail" => http.get(format!("{api}/{}", ids[i % ids.len()])),
                    _ => http.post(api).json(&body(&format!(
                        "load-{}",
                        counter.fetch_add(1, Ordering::Relaxed)
                    ))),
                };
                let t = Instant::now();
                let ok = match request.bearer_auth(token).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                latencies.push(t.elapsed());
                if !ok {
                    errors += 1;
                }
                i += args.concurrency;
            }
            (latencies, errors)
        }
    });
    let results = futures::future::join_all(workers).await;
    let elapsed = started.elapsed();
    let mut outcome = Outcome {
        requests: 0,
        errors: 0,
        latencies: Vec::new(),
        elapsed,
    };
    for (latencies, errors) in results {
        outcome.requests += latencies.len();
        outcome.errors += errors;
        outcome.latencies.extend(latencies);
    }
    outcome
}
