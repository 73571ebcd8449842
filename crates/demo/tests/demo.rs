//! The documented demo command works: it comes up, says where to sign in, and the console user
//! it prints sees the providers, the synced incidents and a query result.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn the_demo_comes_up_with_providers_incidents_and_a_query() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo-data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_socmate-demo"))
        .args(["--listen", "127.0.0.1:0", "--incidents", "30", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let started = Instant::now();
    let mut printed = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        let done = line.starts_with("Ctrl-C stops it");
        printed.push(line);
        if done {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{printed:?}");
    }
    let text = printed.join("\n");
    let base = text
        .split("running at ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in:\n{text}"))
        .trim_end_matches('/')
        .to_owned();
    let password = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("admin:   admin@example.com / "))
        .unwrap_or_else(|| panic!("no admin password in:\n{text}"))
        .to_owned();
    assert!(text.contains("“Contoso Sentinel”: healthy"), "{text}");
    assert!(text.contains("incidents synced: "), "{text}");

    // The printed credentials sign in, and the console's API shows the demo's data.
    let http = reqwest::Client::new();
    let login = http
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"email": "admin@example.com", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let get = |path: &str| {
        http.get(format!("{base}{path}"))
            .header("cookie", &cookie)
            .send()
    };
    let incidents: serde_json::Value = get("/api/incidents?limit=5")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Merged incidents are listed only under status=redirected; together they are all 30.
    let merged: serde_json::Value = get("/api/incidents?status=redirected&limit=1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = incidents["total"].as_i64().unwrap() + merged["total"].as_i64().unwrap();
    assert_eq!(listed, 30, "{incidents}");
    let providers: serde_json::Value = get("/api/admin/siem-providers")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(providers["total"], 2);
    let _ = child.kill();
    let _ = child.wait();
}
