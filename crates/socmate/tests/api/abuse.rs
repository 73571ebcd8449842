//! Abuse resistance: nothing an outsider sends grows our state, holds the server, or locks a
//! user out (docs/security.md lists each control with its test here).

use std::time::{Duration, Instant};

use azure_emulator::{CannedQuery, Endpoint, Fault, FaultKind};
use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::{Options, TestApp, WORKSPACE, spawn_app, spawn_app_with};

const PASSWORD: &str = "correct horse battery staple";

fn limits(
    header_timeout: Duration,
    max_connections: usize,
) -> socmate::http::server::ConnectionLimits {
    socmate::http::server::ConnectionLimits {
        header_timeout,
        max_connections,
        ..socmate::config::Settings::defaults().connections
    }
}

async fn audit(app: &TestApp, query: &str) -> Vec<Value> {
    let reply = app
        .admin(
            Method::GET,
            &format!("/api/admin/audit-log?limit=200&{query}"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["entries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn three_hundred_anonymous_sign_ins_with_60_kb_request_ids_grow_the_store_by_under_1_mb() {
    let app = spawn_app_with(Options {
        sign_in_rate_per_minute: 5,
        ..Options::default()
    })
    .await;
    let before = app.store_bytes().await;
    let huge_id = "a".repeat(60_000);
    for n in 0..300 {
        // Half of them for one account, half each for another made-up one.
        let email = if n % 2 == 0 {
            "victim@example.com".to_owned()
        } else {
            format!("guess-{n}-{}@example.com", "x".repeat(200))
        };
        let status = app
            .http
            .post(format!("{}/api/auth/login", app.base))
            .header("x-request-id", &huge_id)
            .json(&json!({"email": email, "password": "wrong wrong wrong"}))
            .send()
            .await
            .unwrap()
            .status();
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS,
            "{status}"
        );
    }
    let grown = app.store_bytes().await - before;
    println!("300 anonymous sign-ins with 60 kB request ids: the store grew by {grown} bytes");
    assert!(grown < 1_000_000, "the store grew by {grown} bytes");

    let rows = audit(&app, "action=auth.login").await;
    let attempts: i64 = rows.iter().map(|r| r["count"].as_i64().unwrap()).sum();
    assert_eq!(attempts, 300, "every attempt is counted");
    let victim: Vec<_> = rows
        .iter()
        .filter(|r| r["actor"] == "victim@example.com")
        .collect();
    assert!(victim.len() <= 2, "one row per outcome: {victim:?}");
    assert!(victim.iter().any(|r| r["count"].as_i64() > Some(100)));
    for row in &rows {
        let id = row["request_id"].as_str().unwrap();
        assert!(id.len() <= 128 && id != huge_id, "{id:.40}");
        assert!(row["actor"].as_str().unwrap().chars().count() <= 257);
    }
}

#[tokio::test]
async fn two_hundred_refused_analyst_calls_with_30_kb_paths_grow_the_store_by_under_1_mb() {
    let app = spawn_app().await;
    let before = app.store_bytes().await;
    let long = "x".repeat(30_000);
    for n in 0..200 {
        let path = if n % 2 == 0 {
            format!("/api/admin/{long}")
        } else {
            format!("/api/admin/{n}-{long}")
        };
        let reply = app.analyst(Method::GET, &path, None).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
    }
    let grown = app.store_bytes().await - before;
    println!("200 refused analyst calls with 30 kB paths: the store grew by {grown} bytes");
    assert!(grown < 1_000_000, "the store grew by {grown} bytes");
    let rows = audit(&app, "action=access.denied").await;
    let refusals: i64 = rows.iter().map(|r| r["count"].as_i64().unwrap()).sum();
    assert_eq!(refusals, 200);
    assert_eq!(rows.len(), 101, "the repeated path shares one row");
    for row in &rows {
        assert!(row["detail"].as_str().unwrap().chars().count() <= 257);
    }
}

/// Connects and sends the start of a request, never its end.
async fn half_open(base: &str) -> TcpStream {
    let mut stream = TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: socmate\r\n")
        .await
        .unwrap();
    stream
}

/// Waits until the server closes `stream` (or answers it: a 408 counts as cutting off).
async fn cut_off_within(stream: &mut TcpStream, limit: Duration, drip: bool) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        assert!(started.elapsed() < limit, "still connected after {limit:?}");
        if drip && stream.write_all(b"X-Drip: 1\r\n").await.is_err() {
            return started.elapsed();
        }
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await {
            Ok(_) => return started.elapsed(),
            Err(_) => continue,
        }
    }
}

#[tokio::test]
async fn a_header_dripping_client_and_an_idle_connection_are_cut_off_within_the_timeout() {
    let app = spawn_app_with(Options {
        connections: limits(Duration::from_secs(2), 512),
        ..Options::default()
    })
    .await;
    let mut dripping = half_open(&app.base).await;
    let took = cut_off_within(&mut dripping, Duration::from_secs(4), true).await;
    println!("a header-dripping client was cut off after {took:?} (timeout 2 s)");
    assert!(took >= Duration::from_millis(1500), "{took:?}");

    // A kept-alive connection that sends nothing more is closed after the same time.
    let mut idle = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: socmate\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let took = cut_off_within(&mut idle, Duration::from_secs(4), false).await;
    println!("an idle kept-alive connection was closed after {took:?} (timeout 2 s)");
    assert!(took >= Duration::from_millis(1500), "{took:?}");
}

#[tokio::test]
async fn connections_past_the_cap_get_a_fast_503_while_health_probes_answer() {
    let app = spawn_app_with(Options {
        connections: limits(Duration::from_secs(30), 3),
        ..Options::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(half_open(&app.base).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A fresh client each time: no pooled connection from before the cap was reached.
    let fresh = || reqwest::Client::builder().build().unwrap();
    let started = Instant::now();
    let busy = fresh()
        .get(format!("{}/api/admin/siem-providers", app.base))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    println!(
        "past the cap of 3 connections: answered in {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(busy.headers()["retry-after"], "1");
    let body: Value = busy.json().await.unwrap();
    assert_eq!(body["code"], "server_busy");
    for probe in ["/healthz", "/readyz"] {
        let reply = fresh()
            .get(format!("{}{probe}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::OK, "{probe}");
    }

    // Once the slow clients leave, everyone is served again.
    drop(held);
    crate::helpers::wait_until(Duration::from_secs(5), "served again", || async {
        let reply = fresh()
            .get(format!("{}/api/admin/siem-providers", app.base))
            .bearer_auth(&app.admin)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match reply.status() {
            StatusCode::OK => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;
}

#[tokio::test]
async fn shutdown_ends_within_its_window_with_a_slow_client_attached() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = crate::process::Server::start(
        &data,
        None,
        &[("SOCMATE_SHUTDOWN_GRACE", "2")],
        "slow-client.log",
    )
    .await;
    // A request whose body never finishes arriving: its handler waits on it.
    let mut slow = TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap();
    slow.write_all(
        b"POST /api/auth/login HTTP/1.1\r\nHost: socmate\r\nContent-Type: application/json\r\n\
          Content-Length: 1000\r\n\r\n{\"email\":",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    assert!(server.terminate().success());
    let took = started.elapsed();
    println!("shutdown with a slow client attached took {took:?} (window 2 s)");
    assert!(took < Duration::from_millis(3500), "shutdown took {took:?}");
}

async fn login_from(app: &TestApp, client: &str, email: &str, password: &str) -> StatusCode {
    app.http
        .post(format!("{}/api/auth/login", app.base))
        .header("X-Forwarded-For", client)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn the_real_user_signs_in_after_a_stranger_fails_eleven_times_and_during_a_spray() {
    let app = spawn_app_with(Options {
        sign_in_rate_per_minute: 10,
        trusted_proxies: vec!["127.0.0.1"],
        ..Options::default()
    })
    .await;
    app.add_user("admin@example.com", "admin", PASSWORD);
    let stranger = "203.0.113.66";
    let mut outcomes = Vec::new();
    for _ in 0..11 {
        outcomes.push(login_from(&app, stranger, "admin@example.com", "guess guess guess").await);
    }
    assert_eq!(outcomes[..10], [StatusCode::UNAUTHORIZED; 10]);
    assert_eq!(outcomes[10], StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        login_from(&app, stranger, "admin@example.com", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
        "the stranger waits, even with the right password"
    );
    assert_eq!(
        login_from(&app, "198.51.100.10", "admin@example.com", PASSWORD).await,
        StatusCode::OK,
        "the user, elsewhere, is not locked out"
    );

    // A spray: one guess each from forty more addresses spends the account-wide budget (50).
    for n in 0..40 {
        let address = format!("192.0.2.{n}");
        let status = login_from(&app, &address, "admin@example.com", "guess guess guess").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{address}");
    }
    let sprayer = "192.0.2.0";
    assert_eq!(
        login_from(&app, sprayer, "admin@example.com", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
        "while the account is under attack, addresses that failed for it wait"
    );
    assert_eq!(
        login_from(&app, "198.51.100.11", "admin@example.com", PASSWORD).await,
        StatusCode::OK,
        "an address without failures still signs in with the right password"
    );
}

#[tokio::test]
async fn look_alike_names_conflict_and_hidden_characters_are_refused() {
    let app = spawn_app().await;
    let original = app.create_provider_id("Production Sentinel").await;
    for look_alike in [
        "Production\u{a0}Sentinel",
        "\u{ff30}roduction Sentinel",
        "Production   Sentinel ",
    ] {
        let reply = app
            .admin(
                Method::POST,
                "/api/admin/siem-providers",
                Some(crate::helpers::provider_body(look_alike)),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CONFLICT,
            "{look_alike:?}: {}",
            reply.body
        );
    }
    let other = app.create_provider_id("Staging").await;
    let renamed = app
        .admin(
            Method::PATCH,
            &format!("/api/admin/siem-providers/{other}"),
            Some(json!({"name": "Production\u{2003}Sentinel"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::CONFLICT, "{}", renamed.body);

    for hidden in [
        "Production Sentinel\u{200b}",
        "Prod \u{202e}lenitneS",
        "Prod\u{2066}uction",
        "Prod\u{1b}[31m",
    ] {
        let reply = app
            .admin(
                Method::POST,
                "/api/admin/siem-providers",
                Some(crate::helpers::provider_body(hidden)),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{hidden:?}");
        let fields = reply.body["errors"].as_array().unwrap();
        assert_eq!(fields[0]["field"], "name", "{}", reply.body);
    }
    // A full-width name is stored as what it reads.
    let fullwidth = app
        .create_provider_from(crate::helpers::provider_body("\u{ff33}taging EU"))
        .await;
    assert_eq!(fullwidth["name"], "Staging EU");

    app.set_default(&original).await;
    for (title, description) in [
        ("Phishing \u{0}wave", None),
        ("Phishing \u{1b}[2Jwave", None),
        ("Phishing", Some("fine\nbut \u{202e}reversed")),
    ] {
        let reply = app
            .analyst(
                Method::POST,
                "/api/investigations",
                Some(json!({"title": title, "description": description})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{title:?}");
    }
    let opened = app
        .analyst(
            Method::POST,
            "/api/investigations",
            Some(json!({"title": " \u{ff30}hishing  wave ", "description": "line one\nline two"})),
        )
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);
    assert_eq!(opened.body["title"], "Phishing wave");
    assert_eq!(opened.body["description"], "line one\nline two");
}

#[cfg(unix)]
#[tokio::test]
async fn every_file_in_an_operator_made_0755_data_dir_is_0600() {
    use std::os::unix::fs::PermissionsExt as _;

    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = crate::process::Server::start(&data, None, &[], "files.log").await;
    let token = crate::process::issue_token(&data, "admin");
    let created = reqwest::Client::new()
        .post(format!("{}/api/admin/siem-providers", server.base))
        .bearer_auth(&token)
        .json(&crate::helpers::provider_body("Files"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let modes = || {
        std::fs::read_dir(&data)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let mode = e.metadata().unwrap().permissions().mode() & 0o777;
                (e.file_name().to_string_lossy().into_owned(), mode)
            })
            .collect::<Vec<_>>()
    };
    let running = modes();
    for name in [
        "socmate.db",
        "socmate.db-wal",
        "socmate.db-shm",
        "instance.id",
        "master.key",
    ] {
        assert!(
            running.iter().any(|(n, _)| n == name),
            "{name}: {running:?}"
        );
    }
    assert!(server.terminate().success());
    for (name, mode) in running.into_iter().chain(modes()) {
        assert_eq!(mode, 0o600, "{name} is {mode:o}");
    }
}

#[tokio::test]
async fn a_next_link_carrying_credentials_is_refused_and_reported() {
    let mut options = crate::incidents::with_incidents(120, 3);
    options.emulator.graph_max_skip = None;
    let app = spawn_app_with(options).await;
    let origin = app.emulator.url();
    let with_userinfo = origin.replace("http://", "http://user:secret@");
    app.emulator
        .update(|c| c.graph_next_link_base = Some(with_userinfo.clone()));
    let provider = app.create_provider_id("Links").await;
    assert!(app.sync.run_once(&provider).await.is_err());
    let status = app
        .admin(
            Method::GET,
            &format!("/api/admin/siem-providers/{provider}/sync"),
            None,
        )
        .await
        .body;
    let message = status["last_error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("user credentials"), "{status}");
    let followed = app
        .emulator
        .requests()
        .iter()
        .filter(|r| {
            r.endpoint == Some(Endpoint::GraphIncidents)
                && r.query.as_deref().is_some_and(|q| q.contains("skip"))
        })
        .count();
    assert_eq!(followed, 0, "the link was never followed");
}

#[tokio::test]
async fn a_page_of_malformed_records_shows_its_skipped_count() {
    let mut options = crate::incidents::with_incidents(5, 4);
    let now = Utc::now().to_rfc3339();
    for broken in [
        json!({"lastUpdateDateTime": now}),
        json!({"id": {"not": "an id"}, "lastUpdateDateTime": now}),
        json!({"id": "", "lastUpdateDateTime": now}),
    ] {
        options.emulator.tenants[0].incidents.push(broken);
    }
    let app = spawn_app_with(options).await;
    let provider = app.create_provider_id("Malformed").await;
    app.sync.run_once(&provider).await.unwrap();
    let status = app
        .admin(
            Method::GET,
            &format!("/api/admin/siem-providers/{provider}/sync"),
            None,
        )
        .await
        .body;
    assert_eq!(status["fetched"], 5, "{status}");
    assert_eq!(status["skipped"], 3, "{status}");
}

#[tokio::test]
async fn a_deeply_nested_dynamic_value_is_relayed_as_its_text_and_counted() {
    let mut options = Options::default();
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    let shallow = r#"{"a":{"b":[1,2,{"c":null}]}}"#;
    let answer = json!({"tables": [{"name": "PrimaryResult",
        "columns": [{"name": "Deep", "type": "dynamic"}, {"name": "Shallow", "type": "dynamic"}],
        "rows": [[deep, shallow]]}]});
    options.emulator.tenants[0]
        .workspaces
        .iter_mut()
        .find(|w| w.id == WORKSPACE)
        .unwrap()
        .canned
        .push(CannedQuery::new("Deep", answer));
    let app = spawn_app_with(options).await;
    let id = app.create_provider_id("Deep").await;
    app.set_default(&id).await;
    // reqwest parses with serde_json's default depth limit of 128, like most clients.
    let reply = app
        .analyst(
            Method::POST,
            "/api/siem/query",
            Some(json!({"query": "Deep"})),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{:.300}",
        reply.body.to_string()
    );
    let row = &reply.body["tables"][0]["rows"][0];
    assert_eq!(row[0].as_str().map(str::len), Some(400_000));
    assert_eq!(row[1]["a"]["b"][2], json!({"c": null}));
    assert_eq!(reply.body["values_left_encoded"], 1);
}

#[tokio::test]
async fn queries_answer_within_their_timeout_whatever_hangs_upstream() {
    let app = spawn_app().await;
    let id = app.create_provider_id("Hanging").await;
    app.set_default(&id).await;
    // Entra ID first, while no token is cached; then Log Analytics, with a token in hand.
    for (hanging, endpoint) in [
        ("Entra ID", Endpoint::Token),
        ("Log Analytics", Endpoint::LogAnalyticsQuery),
    ] {
        app.emulator.clear_faults();
        let fault = Fault::new(FaultKind::Hang).on(endpoint);
        if hanging == "Log Analytics" {
            let reply = app
                .analyst(
                    Method::POST,
                    "/api/siem/query",
                    Some(json!({"query": "print 1"})),
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        }
        app.emulator.inject(fault);
        let started = Instant::now();
        let reply = app
            .analyst(
                Method::POST,
                "/api/siem/query",
                Some(json!({"query": "print 1", "timeout_s": 5})),
            )
            .await;
        let took = started.elapsed();
        println!(
            "{hanging} hanging, timeout_s 5: {} after {took:?}",
            reply.status
        );
        assert_eq!(
            reply.status,
            StatusCode::GATEWAY_TIMEOUT,
            "{hanging}: {}",
            reply.body
        );
        assert!(
            took >= Duration::from_secs(5) && took < Duration::from_secs(6),
            "{hanging} hanging: answered after {took:?}"
        );
    }
}
