//! Incident list latency as the store grows: the same filtered pages of `GET /api/incidents`
//! over a store of 10,000 and of 1,000,000 incidents, through a release `socmate serve`. The
//! incidents are written with SoCMate's own page writer (`incidents::store::commit_page`, as a
//! sync writes them) before timing; each scenario then runs its requests one after another from
//! one keep-alive client and reports p50/p99. Fails when a p99 over the large store exceeds
//! twice the p99 over the small one.
//!
//! ```sh
//! cargo build --release --bin socmate --bin list-load
//! ./target/release/list-load
//! ./target/release/list-load --database-url postgres://postgres@127.0.0.1:5432/socmate_list_bench
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{SecondsFormat, TimeDelta, Utc};
use clap::Parser;
use secrecy::SecretString;
use serde_json::{Value, json};
use socmate::auth::Role;
use socmate::incidents::store;
use socmate::siem::Incident;
use socmate::store::{DatabaseLocation, Db};
use socmate_bench::{Socmate, TENANT};

/// The harness (and the emulator it runs in-process) on the allocator `socmate` runs on: with
/// glibc's, cloning and freeing the emulator's JSON pages spent most of its time in `malloc`,
/// and the upstream, not SoCMate, was measured.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "target/release/socmate")]
    socmate: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    small: usize,
    #[arg(long, default_value_t = 1_000_000)]
    large: usize,
    /// Timed requests per scenario.
    #[arg(long, default_value_t = 300)]
    requests: usize,
    /// PostgreSQL database to use (emptied first); SQLite in a temp dir without it.
    #[arg(long)]
    database_url: Option<String>,
}

const SEVERITIES: [&str; 4] = ["informational", "low", "medium", "high"];
const STATUSES: [&str; 5] = ["active", "active", "active", "inProgress", "resolved"];
const SOURCES: [&str; 3] = [
    "microsoftSentinel",
    "microsoftDefenderForEndpoint",
    "microsoftDefenderForIdentity",
];
const PAGE: usize = 500;

/// Incident `n` of `total`: updates spread evenly over the last 90 days, newest first.
fn incident(n: usize, total: usize, now: chrono::DateTime<Utc>) -> Incident {
    let step = TimeDelta::days(90).num_milliseconds() / i64::try_from(total).unwrap_or(1);
    let updated = now - TimeDelta::milliseconds(step * i64::try_from(n).unwrap_or(0));
    let title = format!("Suspicious sign-in activity #{n}");
    let owner = format!("analyst{}@contoso.com", n % 20);
    let severity = SEVERITIES[n % 4];
    let status = STATUSES[(n / 4) % 5];
    let stamp = updated.to_rfc3339_opts(SecondsFormat::Millis, true);
    Incident {
        external_id: format!("{n}"),
        status: Some(status.into()),
        severity: Some(severity.into()),
        title: Some(title.clone()),
        owner: Some(owner.clone()),
        last_update: updated,
        created: Some(updated - TimeDelta::hours(1)),
        tenant_id: Some(TENANT.into()),
        sources: vec![SOURCES[n % 3].into()],
        data: json!({"display_name": title, "status": status, "severity": severity,
            "assigned_to": owner, "last_update_at": stamp, "tenant_id": TENANT,
            "classification": "unknown", "custom_tags": [], "comments": []}),
        alerts: Vec::new(),
    }
}

/// Writes `total` incidents under the provider's scope with the sync's page writer.
async fn seed(db: &Db, provider: &str, total: usize) -> anyhow::Result<()> {
    let scope = format!("azure-tenant:{TENANT}");
    store::adopt_scope(db, provider, &scope, &[]).await?;
    let lease = store::acquire_lease(db, &scope, "list-load")
        .await?
        .context("the scope's lease is taken")?;
    let now = Utc::now();
    let started = Instant::now();
    for first in (0..total).step_by(PAGE) {
        let page: Vec<Incident> = (first..(first + PAGE).min(total))
            .map(|n| incident(n, total, now))
            .collect();
        store::commit_page(db, &lease, &page).await?;
        if first % 100_000 == 0 && first > 0 {
            eprintln!("  seeded {first} of {total}");
        }
    }
    store::finish(
        db,
        &lease,
        &store::RunEnd {
            watermark: None,
            error: None,
            skipped: 0,
            notes: &[],
        },
    )
    .await?;
    eprintln!(
        "  seeded {total} incidents in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

struct Scenario {
    name: &'static str,
    query: String,
    /// Pages followed per sample (1: the first page; more: the cursor walk's later pages).
    depth: usize,
}

fn scenarios(provider: &str) -> Vec<Scenario> {
    let day_ago = (Utc::now() - TimeDelta::days(1)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let plain = |name, query: &str| Scenario {
        name,
        query: query.to_owned(),
        depth: 1,
    };
    vec![
        plain("no filter", ""),
        plain("severity=high", "severity=high"),
        plain("status=inProgress", "status=inProgress"),
        plain(
            "source=microsoftDefenderForEndpoint",
            "source=microsoftDefenderForEndpoint",
        ),
        Scenario {
            name: "provider_id",
            query: format!("provider_id={provider}"),
            depth: 1,
        },
        Scenario {
            name: "updated_since (last 24 h)",
            query: format!("updated_since={day_ago}"),
            depth: 1,
        },
        plain("sort=severity", "sort=severity"),
        Scenario {
            name: "severity=high, pages 2–10",
            query: "severity=high".to_owned(),
            depth: 10,
        },
    ]
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

/// p50 and p99 (ms) of each scenario against a store of `total` incidents.
async fn measure(args: &Args, total: usize) -> anyhow::Result<Vec<(f64, f64, i64)>> {
    let mut envs = vec![("SOCMATE_SYNC_INTERVAL", "0".to_owned())];
    if let Some(url) = &args.database_url {
        reset_database(url).await?;
        envs.push(("SOCMATE_DATABASE_URL", url.clone()));
    }
    let server = Socmate::start(&args.socmate, &envs).await?;
    let http = reqwest::Client::new();
    let provider = socmate_bench::create_provider(&http, &server.base).await?;
    let db = match &args.database_url {
        Some(url) => Db::connect(DatabaseLocation::Url(&SecretString::from(url.clone()))).await?,
        None => Db::connect(DatabaseLocation::SqliteIn(server.data_dir())).await?,
    };
    seed(&db, &provider, total).await?;
    db.close().await;

    let token = socmate_bench::token(Role::Analyst)?;
    let mut results = Vec::new();
    for scenario in scenarios(&provider) {
        let mut samples = Vec::with_capacity(args.requests);
        let mut total_seen = 0;
        // A tenth as warm-up, then the timed requests.
        for round in 0..args.requests + args.requests / 10 {
            let mut cursor: Option<String> = None;
            for page in 0..scenario.depth {
                let mut url = format!("{}/api/incidents?limit=50&{}", server.base, scenario.query);
                if let Some(c) = &cursor {
                    url.push_str(&format!("&cursor={c}"));
                }
                let started = Instant::now();
                let response = http.get(&url).bearer_auth(&token).send().await?;
                anyhow::ensure!(
                    response.status() == 200,
                    "{url}: HTTP {}",
                    response.status()
                );
                let body: Value = response.json().await?;
                let took = started.elapsed();
                let timed = round >= args.requests / 10 && (scenario.depth == 1 || page > 0);
                if timed {
                    samples.push(took);
                }
                total_seen = body["total"].as_i64().unwrap_or(-1);
                cursor = body["next_cursor"].as_str().map(str::to_owned);
                if cursor.is_none() {
                    break;
                }
            }
        }
        samples.sort();
        results.push((
            percentile(&samples, 0.5),
            percentile(&samples, 0.99),
            total_seen,
        ));
    }
    Ok(results)
}

async fn reset_database(url: &str) -> anyhow::Result<()> {
    let db = Db::connect(DatabaseLocation::Url(&SecretString::from(url.to_owned()))).await?;
    if let Db::Postgres(pool) = &db {
        sqlx::query("DROP SCHEMA public CASCADE")
            .execute(pool)
            .await?;
        sqlx::query("CREATE SCHEMA public").execute(pool).await?;
    }
    db.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let backend = if args.database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    eprintln!("{backend}: {} incidents", args.small);
    let small = measure(&args, args.small).await?;
    eprintln!("{backend}: {} incidents", args.large);
    let large = measure(&args, args.large).await?;

    println!(
        "| {backend} scenario | p50 ms @{} | p99 ms @{} | p50 ms @{} | p99 ms @{} | p99 ratio |",
        args.small, args.small, args.large, args.large
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut worst: f64 = 0.0;
    for (scenario, ((s50, s99, _), (l50, l99, _))) in
        scenarios("…").iter().zip(small.iter().zip(large.iter()))
    {
        let ratio = l99 / s99;
        worst = worst.max(ratio);
        println!(
            "| {} | {s50:.2} | {s99:.2} | {l50:.2} | {l99:.2} | {ratio:.2} |",
            scenario.name
        );
    }
    println!("worst p99 ratio: {worst:.2} (target ≤ 2)");
    anyhow::ensure!(
        worst <= 2.0,
        "a list's p99 over {} incidents is {worst:.2}× its p99 over {}",
        args.large,
        args.small
    );
    Ok(())
}
