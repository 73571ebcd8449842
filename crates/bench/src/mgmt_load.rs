//! Management-API load harness: starts a release `socmate serve` and axum's hello-world
//! (`hello-world`), each as its own process, then drives each scenario with the same concurrent
//! clients for a fixed time: hello-world; SoCMate's `/healthz` (its middleware stack alone) and
//! `/api/auth/me` (plus bearer authentication), which break down where the time goes; then the
//! provider list, detail and create. The read scenarios take turns in `--rounds` rounds, so
//! that the shared machine's drift during the run weighs on each of them alike (run one after
//! another, their shares moved by ±15 % between runs); create runs last, once, since the
//! providers it adds would grow the list. It reports throughput and latency percentiles as a
//! Markdown table row per scenario, and each one's throughput as a share of hello-world's in the
//! same run; it fails when list or detail falls below half (the target).
//!
//! ```sh
//! cargo build --release --bin socmate --bin mgmt-load --bin hello-world
//! ./target/release/mgmt-load --seconds 12 --rounds 4 --concurrency 32
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

/// The harness (and the emulator it runs in-process) on the allocator `socmate` runs on: with
/// glibc's, cloning and freeing the emulator's JSON pages spent most of its time in `malloc`,
/// and the upstream, not SoCMate, was measured.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// The socmate binary to load.
    #[arg(long, default_value = "target/release/socmate")]
    socmate: PathBuf,
    /// The hello-world baseline.
    #[arg(long, default_value = "target/release/hello-world")]
    hello_world: PathBuf,
    /// Seconds per scenario, split across the rounds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Rounds in which the read scenarios take turns.
    #[arg(long, default_value_t = 4)]
    rounds: u32,
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

#[derive(Default)]
struct Outcome {
    requests: usize,
    errors: usize,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Outcome {
    fn add(&mut self, other: Outcome) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latencies.extend(other.latencies);
        self.elapsed += other.elapsed;
    }
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
    // The stored providers point at a tenant nobody reaches: no background sync or health
    // check, whose failures are not what is measured.
    let mut envs: Vec<(&str, String)> = vec![
        ("SOCMATE_SYNC_INTERVAL", "0".to_owned()),
        ("SOCMATE_HEALTH_INTERVAL", "0".to_owned()),
    ];
    envs.extend(
        args.database_url
            .iter()
            .map(|u| ("SOCMATE_DATABASE_URL", u.clone())),
    );
    let server = Socmate::start(&args.socmate, &envs).await?;
    let base = server.base.clone();
    let hello = HelloWorld::start(&args.hello_world).await?;
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
    let targets = Targets {
        base: &base,
        api: &api,
        hello: &hello.url,
        ids: &ids,
    };
    let reads = ["hello-world", "healthz", "me", "list", "detail"];
    let rounds = args.rounds.max(1);
    let turn = Duration::from_secs(args.seconds) / rounds;
    let mut outcomes: Vec<Outcome> = reads.iter().map(|_| Outcome::default()).collect();
    for _ in 0..rounds {
        for (scenario, total) in reads.iter().zip(&mut outcomes) {
            total.add(run(&args, scenario, turn, &http, &targets, &token, &counter).await);
        }
    }
    let create = run(
        &args,
        "create",
        Duration::from_secs(args.seconds),
        &http,
        &targets,
        &token,
        &counter,
    )
    .await;
    outcomes.push(create);
    let mut rates = Vec::new();
    for (scenario, outcome) in reads.into_iter().chain(["create"]).zip(outcomes) {
        let rate = outcome.requests as f64 / outcome.elapsed.as_secs_f64();
        rates.push((scenario, rate, outcome.errors));
        let mut sorted = outcome.latencies;
        sorted.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "| {backend} | {scenario} | {} | {} | {} | {rate:.0} | {:.2} | {:.2} | {:.2} |",
            args.concurrency,
            outcome.requests,
            outcome.errors,
            ms(percentile(&sorted, 50.0)),
            ms(percentile(&sorted, 99.0)),
            ms(sorted.last().copied().unwrap_or_default()),
        );
    }
    let baseline = rates[0].1;
    anyhow::ensure!(
        rates[0].2 == 0 && baseline > 0.0,
        "the hello-world baseline failed requests: no ratio can be taken"
    );
    println!();
    let mut below = Vec::new();
    for (scenario, rate, _) in &rates[1..] {
        let share = rate / baseline;
        println!("{backend} {scenario}: {share:.2} × hello-world's {baseline:.0} req/s");
        if matches!(*scenario, "list" | "detail") && share < 0.5 {
            below.push(format!("{scenario} {share:.2}"));
        }
    }
    anyhow::ensure!(
        below.is_empty(),
        "reads below half of hello-world's throughput: {}",
        below.join(", ")
    );
    Ok(())
}

/// What the scenarios request.
struct Targets<'a> {
    base: &'a str,
    api: &'a str,
    hello: &'a str,
    ids: &'a [String],
}

/// The hello-world baseline, stopped when dropped.
struct HelloWorld {
    child: std::process::Child,
    url: String,
}

impl HelloWorld {
    async fn start(binary: &std::path::Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = std::process::Command::new(binary)
            .arg(format!("127.0.0.1:{port}"))
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {} (build it with --release first)",
                    binary.display()
                )
            })?;
        let hello = Self {
            child,
            url: format!("http://127.0.0.1:{port}/"),
        };
        let started = Instant::now();
        while reqwest::get(&hello.url).await.is_err() {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(10),
                "hello-world did not start within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(hello)
    }
}

impl Drop for HelloWorld {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn body(name: &str) -> serde_json::Value {
    socmate_bench::provider_body(name)
}

async fn run(
    args: &Args,
    scenario: &str,
    duration: Duration,
    http: &reqwest::Client,
    targets: &Targets<'_>,
    token: &str,
    counter: &Arc<AtomicU64>,
) -> Outcome {
    let Targets {
        base,
        api,
        hello,
        ids,
    } = *targets;
    let started = Instant::now();
    let until = started + duration;
    let workers = (0..args.concurrency).map(|w| {
        let counter = Arc::clone(counter);
        async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            let mut i = w;
            while Instant::now() < until {
                let request = match scenario {
                    "hello-world" => http.get(hello),
                    "healthz" => http.get(format!("{base}/healthz")),
                    "me" => http.get(format!("{base}/api/auth/me")),
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
