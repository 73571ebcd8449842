//! The `/_emulator/` control API, the shipped demo.json, and the binary end to end.

use crate::common::*;
use azure_emulator::{EmulatorConfig, RunningEmulator};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const DEMO_TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const DEMO_APP: &str = "b1a3c5d7-0000-4000-8000-00000000a001";
const DEMO_SECRET: &str = "demo-secret-value-1234";
const DEMO_APP_NO_ROLES: &str = "b1a3c5d7-0000-4000-8000-00000000a002";
const DEMO_SECRET_NO_ROLES: &str = "demo-secret-no-roles-5678";
const DEMO_WS: &str = "c0ffee00-0000-4000-8000-00000000beef";

fn demo_path() -> String {
    format!("{}/demo.json", env!("CARGO_MANIFEST_DIR"))
}

async fn get_token(
    base: &str,
    tenant: &str,
    client_id: &str,
    secret: &str,
    scope: &str,
) -> (u16, Value) {
    let resp = client()
        .post(format!("{base}/{tenant}/oauth2/v2.0/token"))
        .form(&[
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", scope),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn control_api_faults_requests_config() {
    let emu = start().await;
    let base = emu.url();
    let c = client();

    let resp = c
        .post(format!("{base}/_emulator/faults"))
        .json(&json!({"endpoint": "token", "kind": "status", "status": 503, "times": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    let (s, _) = get_token(&base, TENANT, CLIENT, SECRET, LA_SCOPE).await;
    assert_eq!(s, 503);
    let (s, _) = get_token(&base, TENANT, CLIENT, SECRET, LA_SCOPE).await;
    assert_eq!(s, 200);

    let resp = c
        .post(format!("{base}/_emulator/faults"))
        .json(&json!({"kind": "throttle", "retry_after": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    let (s, _) = get_token(&base, TENANT, CLIENT, SECRET, LA_SCOPE).await;
    assert_eq!(s, 429);
    let resp = c
        .delete(format!("{base}/_emulator/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    let (s, _) = get_token(&base, TENANT, CLIENT, SECRET, LA_SCOPE).await;
    assert_eq!(s, 200);

    let bad = c
        .post(format!("{base}/_emulator/faults"))
        .json(&json!({"kind": "explode"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);

    let log: Value = c
        .get(format!("{base}/_emulator/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        log["counts"],
        json!({"token": 4, "log_analytics_query": 0, "graph_incidents": 0, "graph_alerts": 0})
    );
    let statuses: Vec<u64> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![503, 200, 429, 200]);
    assert_eq!(log["requests"][0]["endpoint"], "token");
    assert_eq!(log["requests"][0]["tenant"], TENANT);

    // Replace the config: the old tenant is gone, the new one works.
    let new_tenant = "bbbbbbbb-0000-4000-8000-000000000003";
    let cfg = EmulatorConfig::single_tenant(new_tenant, CLIENT, "rotated", WS);
    let resp = c
        .put(format!("{base}/_emulator/config"))
        .json(&cfg)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    let (s, b) = get_token(&base, TENANT, CLIENT, SECRET, LA_SCOPE).await;
    assert_eq!((s, b["error_codes"][0].as_u64()), (400, Some(90002)));
    let (s, _) = get_token(&base, new_tenant, CLIENT, "rotated", LA_SCOPE).await;
    assert_eq!(s, 200);
    let resp = c
        .put(format!("{base}/_emulator/config"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(emu.config(), cfg);
}

#[tokio::test]
async fn demo_json_credentials_work() {
    let cfg = EmulatorConfig::from_file(demo_path()).unwrap();
    assert_eq!(cfg.tenants.len(), 1);
    assert!(cfg.tenants[0].incidents.len() >= 5);
    let emu = RunningEmulator::start(cfg).await.unwrap();
    let base = emu.url();

    let (s, b) = get_token(
        &base,
        "contoso.onmicrosoft.com",
        DEMO_APP,
        DEMO_SECRET,
        GRAPH_SCOPE,
    )
    .await;
    assert_eq!(s, 200);
    let graph = b["access_token"].as_str().unwrap().to_owned();
    let (s, _, body) = get(
        &format!("{base}/v1.0/security/incidents?$expand=alerts"),
        Some(&graph),
    )
    .await;
    assert_eq!(s, 200);
    let body = json(&body);
    let incidents = body["value"].as_array().unwrap();
    assert_eq!(incidents.len(), 5);
    assert!(
        incidents
            .iter()
            .all(|i| !i["alerts"].as_array().unwrap().is_empty())
    );

    let (s, b) = get_token(&base, DEMO_TENANT, DEMO_APP, DEMO_SECRET, LA_SCOPE).await;
    assert_eq!(s, 200);
    let resp = client()
        .post(format!("{base}/v1/workspaces/{DEMO_WS}/query"))
        .bearer_auth(b["access_token"].as_str().unwrap())
        .json(&json!({"query": "print ok=1", "timespan": "PT5M"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    // The second app authenticates but has no roles.
    let (s, b) = get_token(
        &base,
        DEMO_TENANT,
        DEMO_APP_NO_ROLES,
        DEMO_SECRET_NO_ROLES,
        GRAPH_SCOPE,
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, body) = get(
        &format!("{base}/v1.0/security/incidents"),
        b["access_token"].as_str(),
    )
    .await;
    assert_eq!(s, 403);
    assert!(
        json(&body)["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("application roles: .")
    );
}

#[tokio::test]
async fn binary_serves_demo_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_azure-emulator"))
        .args(["--config", &demo_path(), "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    });
    let line = tokio::time::timeout(Duration::from_secs(5), line)
        .await
        .unwrap()
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("azure-emulator listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let (s, _) = get_token(&base, DEMO_TENANT, DEMO_APP, DEMO_SECRET, GRAPH_SCOPE).await;
    assert_eq!(s, 200);
    let resp = client()
        .post(format!("{base}/_emulator/faults"))
        .json(&json!({"endpoint": "token", "kind": "status", "status": 500}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    let (s, _) = get_token(&base, DEMO_TENANT, DEMO_APP, DEMO_SECRET, GRAPH_SCOPE).await;
    assert_eq!(s, 500);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let waited = tokio::task::spawn_blocking(move || child.wait());
    let exit = tokio::time::timeout(Duration::from_secs(5), waited)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}
