//! Several `socmate serve` processes on one PostgreSQL database, and PostgreSQL outages.
//!
//! These need PostgreSQL, so they are `#[ignore]`d in the plain `cargo test` run (reported as
//! ignored, with the reason) and run by CI's PostgreSQL step with `--include-ignored`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{master_key_b64, provider_body, wait_until};
use crate::process::{Server, issue_token};

const BASE: &str = "/api/admin/siem-providers";

async fn defaults(http: &reqwest::Client, base: &str, token: &str) -> Vec<String> {
    let list: Value = http
        .get(format!("{base}{BASE}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["providers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["is_default"] == true)
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set SOCMATE_TEST_DATABASE_URL and pass --include-ignored (CI does)"]
async fn three_replicas_racing_keep_exactly_one_default() {
    let url = crate::pg::fresh_database()
        .await
        .expect("SOCMATE_TEST_DATABASE_URL must be set for this test");
    let root = tempfile::tempdir().unwrap();
    let key = master_key_b64(11);
    let envs = [
        ("SOCMATE_DATABASE_URL", url.as_str()),
        ("SOCMATE_MASTER_KEY", key.as_str()),
    ];

    // Three replicas start at once on an empty database: they race to migrate it.
    let dirs = ["r1", "r2", "r3"].map(|d| root.path().join(d));
    let (a, b, c) = tokio::join!(
        Server::start(&dirs[0], None, &envs, "r1.log"),
        Server::start(&dirs[1], None, &envs, "r2.log"),
        Server::start(&dirs[2], None, &envs, "r3.log"),
    );
    // `socmate migrate` on the migrated database is a no-op.
    for _ in 0..2 {
        let out = crate::process::command(&root.path().join("m"), None, &envs)
            .arg("migrate")
            .output()
            .unwrap();
        crate::process::assert_succeeded(&out);
        assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
    }
    let replicas = [a, b, c];
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    let token = issue_token(&root.path().join("m"), "admin");
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();

    // Racing first creates, spread over the replicas.
    let creates = (0..12).map(|i| {
        let (http, base, token) = (&http, &bases[i % 3], &token);
        async move {
            http.post(format!("{base}{BASE}"))
                .bearer_auth(token)
                .json(&provider_body(&format!("Replica {i}")))
                .send()
                .await
                .unwrap()
        }
    });
    let mut ids = Vec::new();
    for reply in futures::future::join_all(creates).await {
        statuses.push(reply.status());
        let body: Value = reply.json().await.unwrap();
        if let Some(id) = body["id"].as_str() {
            ids.push(id.to_owned());
        }
    }
    assert_eq!(ids.len(), 12, "{statuses:?}");
    assert_eq!(defaults(&http, &bases[0], &token).await.len(), 1);

    // Racing set-defaults and creates on every replica.
    for round in 0..4 {
        let calls = (0..45).map(|i| {
            let (http, base, token, ids) = (&http, &bases[(i + round) % 3], &token, &ids);
            async move {
                if i % 5 == 0 {
                    let name = format!("Round {round} {i}");
                    http.post(format!("{base}{BASE}"))
                        .bearer_auth(token)
                        .json(&provider_body(&name))
                        .send()
                        .await
                        .unwrap()
                        .status()
                } else {
                    let id = &ids[(i * 7 + round) % ids.len()];
                    http.put(format!("{base}{BASE}/{id}/default"))
                        .bearer_auth(token)
                        .send()
                        .await
                        .unwrap()
                        .status()
                }
            }
        });
        statuses.extend(futures::future::join_all(calls).await);
        for base in &bases {
            assert_eq!(
                defaults(&http, base, &token).await.len(),
                1,
                "round {round} seen from {base}"
            );
        }
    }

    // Deleting the default while others race to set one: at most one, never two.
    let current = defaults(&http, &bases[0], &token).await.remove(0);
    let others: Vec<_> = ids
        .iter()
        .filter(|id| **id != current)
        .take(6)
        .cloned()
        .collect();
    let deletes = std::iter::once(current.clone())
        .chain(others[..2].iter().cloned())
        .map(|id| {
            let (http, base, token) = (&http, &bases[1], &token);
            async move {
                http.delete(format!("{base}{BASE}/{id}"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        });
    let sets = others[2..].iter().enumerate().map(|(i, id)| {
        let (http, base, token) = (&http, &bases[i % 3], &token);
        async move {
            http.put(format!("{base}{BASE}/{id}/default"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let (d, s) = tokio::join!(
        futures::future::join_all(deletes),
        futures::future::join_all(sets)
    );
    statuses.extend(d);
    statuses.extend(s);
    assert!(defaults(&http, &bases[2], &token).await.len() <= 1);

    assert!(
        statuses.iter().all(|s| !s.is_server_error()),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK
            || *s == StatusCode::CREATED
            || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    for replica in replicas {
        assert!(replica.terminate().success());
    }
}

/// A throwaway PostgreSQL cluster in a temp dir on a random port.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Cluster {
    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let status = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .status()
        } else {
            Command::new(&exe).args(args).status()
        }
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
        assert!(status.success(), "{tool} {args:?} failed");
    }

    fn create(dir: &Path) -> Cluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .map(|e| e.unwrap().path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .max()
            .expect("an initdb under /usr/lib/postgresql/*/bin");
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if as_postgres {
            // PostgreSQL refuses to run as root: hand the directory to the postgres user.
            let ids = |flag| {
                let out = Command::new("id")
                    .args([flag, "postgres"])
                    .output()
                    .unwrap();
                String::from_utf8(out.stdout)
                    .unwrap()
                    .trim()
                    .parse::<u32>()
                    .unwrap()
            };
            std::os::unix::fs::chown(dir, Some(ids("-u")), Some(ids("-g"))).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Cluster {
            bin,
            data: dir.join("pgdata"),
            port,
            as_postgres,
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                cluster.data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        cluster
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.data.parent().unwrap().display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-l",
                self.data.parent().unwrap().join("pg.log").to_str().unwrap(),
                "start",
            ],
        );
    }

    fn stop_immediately(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(if self.as_postgres { "runuser" } else { "true" })
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args([
                "-D",
                self.data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "stop",
            ])
            .status();
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL server binaries (initdb, pg_ctl): pass --include-ignored (CI does)"]
async fn a_database_outage_gives_fast_503s_and_recovers_without_restart() {
    let pg_dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::create(pg_dir.path());
    cluster.start();
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
    let root = tempfile::tempdir().unwrap();
    let key = master_key_b64(12);
    let envs = [
        ("SOCMATE_DATABASE_URL", url.as_str()),
        ("SOCMATE_MASTER_KEY", key.as_str()),
    ];
    let server = Server::start(&root.path().join("data"), None, &envs, "outage.log").await;
    let token = issue_token(&root.path().join("data"), "admin");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let list = || {
        http.get(format!("{}{BASE}", server.base))
            .bearer_auth(&token)
            .send()
    };
    let created = http
        .post(format!("{}{BASE}", server.base))
        .bearer_auth(&token)
        .json(&provider_body("Before"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    cluster.stop_immediately();
    let outage = Instant::now();
    let mut answers = 0;
    while outage.elapsed() < Duration::from_secs(4) {
        let t = Instant::now();
        let reply = list().await.unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "a request hung for {:?} during the outage",
            t.elapsed()
        );
        assert_eq!(reply.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.headers()["content-type"], "application/problem+json");
        assert!(reply.headers().contains_key("retry-after"));
        answers += 1;
    }
    assert!(answers >= 2);
    let ready = http
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        http.get(format!("{}/healthz", server.base))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    cluster.start();
    let body: Value = wait_until(
        Duration::from_secs(10),
        "the API to answer again after the database came back",
        || async {
            let reply = list().await.unwrap();
            match reply.status() {
                StatusCode::OK => Ok(reply.json().await.unwrap()),
                other => Err(other.to_string()),
            }
        },
    )
    .await;
    assert_eq!(body["total"], 1, "nothing was lost");
    assert_eq!(
        http.get(format!("{}/readyz", server.base))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set SOCMATE_TEST_DATABASE_URL and pass --include-ignored (CI does)"]
async fn two_replicas_never_sync_one_provider_at_once_and_converge() {
    use azure_emulator::{Endpoint, Fault, FaultKind, RunningEmulator};
    let url = crate::pg::fresh_database()
        .await
        .expect("SOCMATE_TEST_DATABASE_URL must be set for this test");
    let emulator = RunningEmulator::start(crate::incidents::with_incidents(600, 13).emulator)
        .await
        .unwrap();
    emulator.inject(Fault::new(FaultKind::Delay { ms: 30 }).on(Endpoint::GraphIncidents));
    let root = tempfile::tempdir().unwrap();
    let key = master_key_b64(14);
    let envs = [
        ("SOCMATE_DATABASE_URL", url.as_str()),
        ("SOCMATE_MASTER_KEY", key.as_str()),
        ("SOCMATE_SYNC_INTERVAL", "1"),
    ];
    let dirs = ["s1", "s2"].map(|d| root.path().join(d));
    let (a, b) = tokio::join!(
        Server::start(&dirs[0], Some(&emulator), &envs, "s1.log"),
        Server::start(&dirs[1], Some(&emulator), &envs, "s2.log"),
    );
    let token = issue_token(&dirs[0], "admin");
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{}{BASE}", a.base))
        .bearer_auth(&token)
        .json(&provider_body("Shared"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    // Both schedulers fire every second for several runs.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        emulator.max_concurrent(Endpoint::GraphIncidents),
        1,
        "two replicas read the same provider at once"
    );
    let first_pages = emulator
        .requests()
        .iter()
        .filter(|r| {
            r.endpoint == Some(Endpoint::GraphIncidents)
                && !r.query.as_deref().unwrap_or_default().contains("skip")
        })
        .count();
    assert!(
        first_pages >= 2,
        "the replicas kept syncing ({first_pages} runs)"
    );

    let live = emulator.config().tenants[0]
        .incidents
        .iter()
        .filter(|i| i["status"] != "redirected")
        .count();
    for replica in [&a, &b] {
        let list: Value = http
            .get(format!("{}/api/incidents?limit=1", replica.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list["total"], live, "as seen from {}", replica.base);
    }
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}
