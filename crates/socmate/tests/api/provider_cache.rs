//! Each process serves the providers from memory (`providers::cache`); what one process changes,
//! every other process on the same store shows within moments, never a stale copy. The processes
//! are real `socmate serve` binaries: two on one SQLite file, two replicas on one PostgreSQL
//! database, whose listening connections are also cut.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use azure_emulator::RunningEmulator;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection as _, PgConnection};

use socmate::providers::cache::POLL;

use crate::helpers::{Options, master_key_b64, provider_body, wait_until};
use crate::process::{Server, issue_token};

const BASE: &str = "/api/admin/siem-providers";
/// How long another process may take to show a change: its watch polls SQLite every 100 ms
/// and hears PostgreSQL's notification at once; a stale copy would show forever.
const WITHIN: Duration = Duration::from_secs(2);

struct Client {
    http: reqwest::Client,
    token: String,
    /// How long a change may take to show.
    within: Duration,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply = request.send().await.unwrap();
        let status = reply.status();
        (status, reply.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, server: &Server, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, format!("{}{path}", server.base), None)
            .await
    }

    /// Waits until `server` answers `path` with what `shows` accepts.
    async fn sees(
        &self,
        server: &Server,
        path: &str,
        what: &str,
        shows: impl Fn(StatusCode, &Value) -> bool,
    ) {
        wait_until(self.within, what, || async {
            let (status, body) = self.get(server, path).await;
            if shows(status, &body) {
                Ok(())
            } else {
                Err(format!("{status} {body}"))
            }
        })
        .await;
    }

    async fn rename(&self, server: &Server, id: &str, name: &str) {
        let (status, body) = self
            .call(
                reqwest::Method::PATCH,
                format!("{}{BASE}/{id}", server.base),
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

fn named(body: &Value, id: &str) -> Option<String> {
    body["providers"]
        .as_array()?
        .iter()
        .find(|p| p["id"] == id)
        .and_then(|p| p["name"].as_str())
        .map(str::to_owned)
}

/// Every write `a` makes (create, rename, health test, default, delete) shows on `b`'s list and
/// detail, which `b` has just served from its copy, within `client.within`. Returns the id of a
/// live provider.
async fn b_shows_what_a_changes(client: &Client, a: &Server, b: &Server) -> String {
    let (status, created) = client
        .call(
            reqwest::Method::POST,
            format!("{}{BASE}", a.base),
            Some(provider_body("First")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let detail = format!("{BASE}/{id}");
    client
        .sees(b, BASE, "b to list a's new provider", |_, body| {
            named(body, &id).as_deref() == Some("First")
        })
        .await;
    // Served twice, so that b holds a copy (its watch is up by now).
    for _ in 0..2 {
        assert_eq!(client.get(b, &detail).await.1["name"], "First");
    }

    client.rename(a, &id, "Renamed").await;
    client
        .sees(b, BASE, "b to list the new name", |_, body| {
            named(body, &id).as_deref() == Some("Renamed")
        })
        .await;
    client
        .sees(b, &detail, "b to show the new name", |_, body| {
            body["name"] == "Renamed"
        })
        .await;

    let (status, tested) = client
        .call(
            reqwest::Method::POST,
            format!("{}{detail}/test", a.base),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tested}");
    assert_eq!(tested["status"], "healthy", "{tested}");
    client
        .sees(b, &detail, "b to show the health a recorded", |_, body| {
            body["last_health_status"] == "healthy" && body["last_health_check"].is_string()
        })
        .await;

    let (status, second) = client
        .call(
            reqwest::Method::POST,
            format!("{}{BASE}", a.base),
            Some(provider_body("Second")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let second = second["id"].as_str().unwrap().to_owned();
    let (status, _) = client
        .call(
            reqwest::Method::PUT,
            format!("{}{BASE}/{second}/default", a.base),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    client
        .sees(b, &detail, "b to show the default moved away", |_, body| {
            body["is_default"] == false
        })
        .await;

    let (status, _) = client
        .call(reqwest::Method::DELETE, format!("{}{detail}", a.base), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    client
        .sees(
            b,
            &detail,
            "b to forget the deleted provider",
            |status, _| status == StatusCode::NOT_FOUND,
        )
        .await;
    client
        .sees(
            b,
            BASE,
            "b to list without the deleted provider",
            |_, body| body["total"] == 1 && named(body, &id).is_none(),
        )
        .await;
    second
}

fn client(data_dir: &Path, within: Duration) -> Client {
    Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        token: issue_token(data_dir, "admin"),
        within,
    }
}

#[tokio::test]
async fn the_read_after_a_write_shows_it() {
    let emulator = RunningEmulator::start(Options::default().emulator)
        .await
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let key = master_key_b64(80);
    let envs = [
        ("SOCMATE_MASTER_KEY", key.as_str()),
        ("SOCMATE_SYNC_INTERVAL", "0"),
    ];
    let data = root.path().join("data");
    let server = Server::start(&data, Some(&emulator), &envs, "server.log").await;
    // Once the watch is up (its first poll is at start), every read must show the write before
    // it at the first try: no waiting for the next poll.
    tokio::time::sleep(3 * POLL).await;
    let client = client(&data, Duration::ZERO);
    b_shows_what_a_changes(&client, &server, &server).await;
    assert!(server.terminate().success());
}

#[tokio::test]
async fn two_processes_on_one_sqlite_file_show_each_others_changes() {
    let emulator = RunningEmulator::start(Options::default().emulator)
        .await
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let key = master_key_b64(81);
    let envs = [
        ("SOCMATE_MASTER_KEY", key.as_str()),
        ("SOCMATE_SYNC_INTERVAL", "0"),
    ];
    let data = root.path().join("data");
    let a = Server::start(&data, Some(&emulator), &envs, "a.log").await;
    let b = Server::start(&data, Some(&emulator), &envs, "b.log").await;
    let client = client(&data, WITHIN);
    b_shows_what_a_changes(&client, &a, &b).await;
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}

/// The backends of the replicas' listening connections.
async fn listeners(db: &mut PgConnection) -> HashSet<i32> {
    sqlx::query_scalar::<_, i32>(
        "SELECT pid FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%socmate_providers%'",
    )
    .fetch_all(db)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set SOCMATE_TEST_DATABASE_URL and pass --include-ignored (CI does)"]
async fn replicas_show_each_others_changes_and_listen_again_when_cut_off() {
    let url = crate::pg::fresh_database()
        .await
        .expect("SOCMATE_TEST_DATABASE_URL must be set for this test");
    let emulator = RunningEmulator::start(Options::default().emulator)
        .await
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let key = master_key_b64(82);
    let envs = [
        ("SOCMATE_DATABASE_URL", url.as_str()),
        ("SOCMATE_MASTER_KEY", key.as_str()),
        ("SOCMATE_SYNC_INTERVAL", "0"),
    ];
    let dirs = ["a", "b"].map(|d| root.path().join(d));
    let a = Server::start(&dirs[0], Some(&emulator), &envs, "a.log").await;
    let b = Server::start(&dirs[1], Some(&emulator), &envs, "b.log").await;
    let client = client(&dirs[0], WITHIN);
    let id = b_shows_what_a_changes(&client, &a, &b).await;
    let detail = format!("{BASE}/{id}");

    // Cut both replicas' listening connections, as a failover or a connection reaper would.
    let mut db = PgConnection::connect(&url).await.unwrap();
    let cut = listeners(&mut db).await;
    assert_eq!(cut.len(), 2, "each replica listens on one connection");
    for pid in &cut {
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&mut db)
            .await
            .unwrap();
    }
    // Whatever happens while b is deaf, it never shows a stale copy.
    client.rename(&a, &id, "While cut off").await;
    client
        .sees(
            &b,
            &detail,
            "b to show a change made while it was cut off",
            |_, body| body["name"] == "While cut off",
        )
        .await;
    // Both listen again on new connections, and b hears a's next change.
    let relistened = wait_until(
        Duration::from_secs(10),
        "both replicas to listen again",
        || async {
            let now = listeners(&mut PgConnection::connect(&url).await.unwrap()).await;
            if now.len() == 2 && now.is_disjoint(&cut) {
                Ok(now)
            } else {
                Err(format!("{now:?} (cut {cut:?})"))
            }
        },
    )
    .await;
    assert_eq!(client.get(&b, &detail).await.1["name"], "While cut off");
    client.rename(&a, &id, "Heard again").await;
    client
        .sees(
            &b,
            &detail,
            "b to show a change after listening again",
            |_, body| body["name"] == "Heard again",
        )
        .await;
    assert_eq!(listeners(&mut db).await, relistened);
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}
