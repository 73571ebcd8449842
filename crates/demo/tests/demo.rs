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
    // The Graph provider's workspace holds incidents created by API that Graph never lists.
    assert!(
        text.contains("“Contoso Sentinel”: healthy (incidents_not_in_graph)"),
        "{text}"
    );
    assert!(text.contains("“Contoso branch”: healthy\n"), "{text}");
    assert!(
        text.contains("incidents synced for “Contoso branch”: 8 "),
        "{text}"
    );

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
    let json = |path: String| {
        let request = get(&path);
        async move {
            request
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let providers = json("/api/admin/siem-providers".into()).await;
    assert_eq!(providers["total"], 3, "{providers}");
    let graph = providers["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Contoso Sentinel")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Merged incidents are listed only under status=redirected; together they are all 30.
    let incidents = json(format!("/api/incidents?provider_id={graph}&limit=5")).await;
    let merged = json(format!(
        "/api/incidents?provider_id={graph}&status=redirected&limit=1"
    ))
    .await;
    let listed = incidents["total"].as_i64().unwrap() + merged["total"].as_i64().unwrap();
    assert_eq!(listed, 30, "{incidents}");
    let _ = child.kill();
    let _ = child.wait();
}
