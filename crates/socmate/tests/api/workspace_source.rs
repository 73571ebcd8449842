//! The workspace's own tables as an incident source, and the connection test's diagnosis of
//! which source fits, against the emulator's [`azure_emulator::sentinel_estate`]: Graph lists
//! Defender XDR's incidents; the onboarded workspace also holds API-created incidents Graph never
//! lists; the other workspace is not onboarded at all.

use std::collections::BTreeMap;

use azure_emulator::{EmulatorConfig, Endpoint, Estate, sentinel_estate};
use chrono::{TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use socmate::incidents::RunOutcome;

use crate::helpers::{
    CLIENT, Options, TENANT, TestApp, WORKSPACE, With, check, provider_body, secret, spawn_app_with,
};

const OTHER_WORKSPACE: &str = "c0ffee00-0000-4000-8000-0000000000b2";
const TEST: &str = "/api/admin/siem-providers/test";

fn estate(api_created: usize, other_incidents: usize) -> Options {
    let estate = Estate {
        tenant_id: TENANT.into(),
        client_id: CLIENT.into(),
        secret: secret(),
        onboarded_workspace: WORKSPACE.into(),
        other_workspace: OTHER_WORKSPACE.into(),
        incidents: 80,
        api_created,
        other_incidents,
        seed: 11,
        start: Utc::now() - TimeDelta::days(5),
    };
    Options {
        emulator: sentinel_estate(&estate),
        ..Options::default()
    }
}

/// Each incident's latest row in a workspace's `SecurityIncident` table, by `IncidentName`.
fn latest_rows(config: &EmulatorConfig, workspace: &str) -> BTreeMap<String, Value> {
    let rows = &config.tenants[0]
        .workspace(workspace)
        .unwrap()
        .security_incidents;
    let mut latest: BTreeMap<String, Value> = BTreeMap::new();
    for row in rows {
        let name = row["IncidentName"].as_str().unwrap().to_owned();
        let newer = latest.get(&name).is_none_or(|seen| {
            seen["LastModifiedTime"].as_str() < row["LastModifiedTime"].as_str()
        });
        if newer {
            latest.insert(name, row.clone());
        }
    }
    latest
}

/// `IncidentName` → (latest `LastModifiedTime`, status as SoCMate shows it).
fn table_view(config: &EmulatorConfig, workspace: &str) -> BTreeMap<String, (String, String)> {
    latest_rows(config, workspace)
        .into_iter()
        .map(|(name, row)| {
            let status = row["Status"].as_str().unwrap().to_lowercase();
            let at = row["LastModifiedTime"].as_str().unwrap().to_owned();
            (name, (at, status))
        })
        .collect()
}

/// Every incident SoCMate lists for a provider, with its data.
async fn listed(app: &TestApp, provider: &str) -> BTreeMap<String, Value> {
    let mut all = BTreeMap::new();
    let mut cursor = String::new();
    loop {
        let page = app
            .analyst(
                Method::GET,
                &format!("/api/incidents?provider_id={provider}&limit=200{cursor}"),
                None,
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        for incident in page.body["incidents"].as_array().unwrap() {
            let id = incident["external_id"].as_str().unwrap().to_owned();
            assert!(all.insert(id, incident.clone()).is_none(), "listed twice");
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return all,
        }
    }
}

/// A workspace Graph knows nothing of: every incident arrives through its tables, at its latest
/// row, with its alerts, in keyset pages (ties on `LastModifiedTime` included); a second run
/// after changes stores the changes and nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_onboarded_workspaces_incidents_arrive_through_the_workspace_source() {
    let mut options = estate(0, 450);
    // Eleven incidents last changed in the same instant straddle the first page's end (200).
    let rows = &mut options.emulator.tenants[0].workspaces[1].security_incidents;
    let mut latest: Vec<(String, usize)> = rows
        .iter()
        .enumerate()
        .skip(1)
        .step_by(2)
        .map(|(i, r)| (r["LastModifiedTime"].as_str().unwrap().to_owned(), i))
        .collect();
    latest.sort();
    let tie = latest[195].0.clone();
    for (_, i) in &latest[195..206] {
        rows[*i]["LastModifiedTime"] = json!(tie);
        if rows[*i - 1]["LastModifiedTime"].as_str().unwrap() >= tie.as_str() {
            rows[*i - 1]["LastModifiedTime"] = json!("2020-01-01T00:00:00Z");
        }
    }
    // One alert aged out of the SecurityAlert table: its incident arrives without it, and the
    // sync status says so.
    let workspace = &mut options.emulator.tenants[0].workspaces[1];
    let gone = workspace.security_incidents[1]["AlertIds"][0].clone();
    workspace
        .security_alerts
        .retain(|a| a["SystemAlertId"] != gone);
    let app = spawn_app_with(options).await;
    let body = provider_body("Branch office")
        .with("workspace_id", json!(OTHER_WORKSPACE))
        .with("incident_source", json!("workspace"));
    let provider = app.create_provider_from(body).await;
    assert_eq!(provider["incident_source"], "workspace");
    let id = provider["id"].as_str().unwrap().to_owned();

    let outcome = app.sync.run_once(&id).await.unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { created: 450, .. }),
        "{outcome:?}"
    );
    let config = app.emulator.config();
    let expected = table_view(&config, OTHER_WORKSPACE);
    let alert_counts: BTreeMap<String, usize> = latest_rows(&config, OTHER_WORKSPACE)
        .into_iter()
        .map(|(name, row)| {
            let ids = row["AlertIds"].as_array().unwrap();
            (name, ids.iter().filter(|id| **id != gone).count())
        })
        .collect();
    let status = app
        .admin(
            Method::GET,
            &format!("/api/admin/siem-providers/{id}/sync"),
            None,
        )
        .await
        .body;
    assert!(
        status["notes"]
            .to_string()
            .contains("1 alerts named by incidents were not in the SecurityAlert table"),
        "{status}"
    );
    let stored = listed(&app, &id).await;
    let seen: BTreeMap<String, (String, String)> = stored
        .iter()
        .map(|(name, i)| {
            (
                name.clone(),
                (
                    i["last_update_at"].as_str().unwrap().to_owned(),
                    i["status"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    assert_eq!(seen, expected);
    let sample = stored.values().next().unwrap();
    assert_eq!(sample["scope"], "workspace", "{sample}");
    assert_eq!(sample["workspace_id"], OTHER_WORKSPACE);
    assert_eq!(sample["tenant_id"], TENANT, "{sample}");
    assert!(app.emulator.request_count(Endpoint::GraphIncidents) == 0);

    // Every alert an incident names, attached.
    let without_one = config.tenants[0].workspaces[1].security_incidents[1]["IncidentName"]
        .as_str()
        .unwrap()
        .to_owned();
    let sampled = alert_counts
        .iter()
        .take(25)
        .chain(alert_counts.get_key_value(&without_one));
    for (name, count) in sampled {
        let detail = app
            .analyst(
                Method::GET,
                &format!("/api/incidents/{}", stored[name]["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(detail.status, StatusCode::OK, "{}", detail.body);
        assert_eq!(
            detail.body["alerts"].as_array().unwrap().len(),
            *count,
            "{name}"
        );
        // The products are its alerts'.
        assert_eq!(
            detail.body["sources"]
                .as_array()
                .is_some_and(|s| !s.is_empty()),
            *count > 0,
            "{}",
            detail.body
        );
    }

    // A change (a new row for an incident) and a new incident: the next run stores both.
    let changed = expected.keys().next().unwrap().clone();
    app.emulator.update(|c| {
        let rows = &mut c.tenants[0].workspaces[1].security_incidents;
        let mut change = rows
            .iter()
            .find(|r| r["IncidentName"] == changed.as_str())
            .unwrap()
            .clone();
        let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        change["LastModifiedTime"] = json!(now);
        change["TimeGenerated"] = json!(now);
        change["Status"] = json!("Closed");
        let mut fresh = change.clone();
        fresh["IncidentName"] = json!("5e1f0000-0000-4000-8000-000000000001");
        fresh["IncidentNumber"] = json!(9_999);
        rows.push(change);
        rows.push(fresh);
    });
    let outcome = app.sync.run_once(&id).await.unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { created: 1, .. }),
        "{outcome:?}"
    );
    let stored = listed(&app, &id).await;
    assert_eq!(stored.len(), 451);
    assert_eq!(stored[&changed]["status"], "closed");
}

/// Graph source on a workspace whose table holds incidents Graph does not list (created by API):
/// the incidents check warns and names both fixes; the provider stays healthy. Where every
/// Sentinel incident reached Defender XDR, the check simply passes.
#[tokio::test]
async fn the_connection_test_warns_when_graph_misses_the_workspaces_incidents() {
    let app = spawn_app_with(estate(4, 0)).await;
    let reply = app
        .admin(Method::POST, TEST, Some(crate::helpers::connection_body()))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let result = reply.body;
    assert_eq!(result["status"], "healthy", "{result}");
    let incidents = check(&result, "incidents");
    assert_eq!(incidents["status"], "warning", "{incidents}");
    assert_eq!(incidents["code"], "incidents_not_in_graph");
    let hint = incidents["hint"].as_str().unwrap();
    assert!(hint.contains("4 Microsoft Sentinel incident(s)"), "{hint}");
    assert!(hint.contains("Onboard the workspace"), "{hint}");
    assert!(hint.contains("incident_source"), "{hint}");
    assert_eq!(check(&result, "alerts")["status"], "passed");

    let app = spawn_app_with(estate(0, 0)).await;
    let reply = app
        .admin(Method::POST, TEST, Some(crate::helpers::connection_body()))
        .await;
    assert_eq!(
        check(&reply.body, "incidents")["status"],
        "passed",
        "{}",
        reply.body
    );

    // The workspace source reads the tables, not Graph.
    let app = spawn_app_with(estate(4, 0)).await;
    let body = crate::helpers::connection_body().with("incident_source", json!("workspace"));
    let reply = app.admin(Method::POST, TEST, Some(body)).await;
    assert_eq!(reply.body["status"], "healthy", "{}", reply.body);
    for name in ["incidents", "alerts"] {
        assert_eq!(
            check(&reply.body, name)["status"],
            "passed",
            "{}",
            reply.body
        );
    }
    assert_eq!(app.emulator.request_count(Endpoint::GraphIncidents), 0);
}

/// A workspace without Sentinel cannot be a workspace source: the incidents check fails with
/// what to do.
#[tokio::test]
async fn a_workspace_without_sentinel_fails_the_workspace_source_check() {
    let app = spawn_app_with(Options::default()).await;
    let body = crate::helpers::connection_body().with("incident_source", json!("workspace"));
    let reply = app.admin(Method::POST, TEST, Some(body)).await;
    assert_eq!(reply.body["status"], "error", "{}", reply.body);
    let incidents = check(&reply.body, "incidents");
    assert_eq!(incidents["code"], "no_sentinel_tables", "{incidents}");
    assert_eq!(check(&reply.body, "alerts")["code"], "no_sentinel_tables");
    assert!(
        incidents["hint"]
            .as_str()
            .unwrap()
            .contains("enable Microsoft Sentinel"),
        "{incidents}"
    );
}

/// Graph has no security API in Azure China: such providers read their workspace by default,
/// refuse the Graph source, and test healthy without ever asking Graph for anything.
#[tokio::test]
async fn a_china_provider_reads_its_workspace_and_tests_healthy_without_graph() {
    let app = spawn_app_with(estate(3, 0)).await;
    let china = provider_body("Beijing").with("cloud", json!("AzureChinaCloud"));
    let refused = app
        .admin(
            Method::POST,
            "/api/admin/siem-providers",
            Some(china.clone().with("incident_source", json!("graph"))),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert!(
        refused.body.to_string().contains("incident_source"),
        "{}",
        refused.body
    );

    let provider = app.create_provider_from(china).await;
    assert_eq!(provider["incident_source"], "workspace");
    let id = provider["id"].as_str().unwrap();
    let reply = app
        .admin(
            Method::POST,
            &format!("/api/admin/siem-providers/{id}/test"),
            None,
        )
        .await;
    assert_eq!(reply.body["status"], "healthy", "{}", reply.body);
    assert_eq!(check(&reply.body, "incidents")["status"], "passed");
    assert_eq!(app.emulator.request_count(Endpoint::GraphIncidents), 0);
    assert_eq!(app.emulator.request_count(Endpoint::GraphAlerts), 0);
    assert_eq!(
        app.emulator.token_audiences(),
        ["https://api.loganalytics.azure.cn"]
    );

    // Moving it to the public cloud brings back that cloud's default; naming a source keeps it.
    let moved = app
        .admin(
            Method::PATCH,
            &format!("/api/admin/siem-providers/{id}"),
            Some(json!({"cloud": "AzurePublic"})),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_eq!(moved.body["incident_source"], "graph");
    let kept = app
        .admin(
            Method::PATCH,
            &format!("/api/admin/siem-providers/{id}"),
            Some(json!({"incident_source": "workspace"})),
        )
        .await;
    assert_eq!(kept.body["incident_source"], "workspace", "{}", kept.body);
    let bad = app
        .admin(
            Method::PATCH,
            &format!("/api/admin/siem-providers/{id}"),
            Some(json!({"incident_source": "arm"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body
            .to_string()
            .contains("\\\"graph\\\" or \\\"workspace\\\""),
        "{}",
        bad.body
    );
}

/// The workspace source survives SIGKILL at random points as the Graph source does: nothing lost,
/// nothing twice, every incident at its latest row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_workspace_sync_loses_and_duplicates_nothing() {
    crate::binary::crashes_lose_and_duplicate_nothing(crate::binary::CrashCase {
        emulator: estate(0, 1_500).emulator,
        provider: provider_body("Crash")
            .with("workspace_id", json!(OTHER_WORKSPACE))
            .with("incident_source", json!("workspace")),
        slowed: Endpoint::LogAnalyticsQuery,
        // A page of incidents and one of their alerts, per 200 incidents.
        full_run_requests: 2 * 1_500usize.div_ceil(200),
        change: |c, round| {
            let rows = &mut c.tenants[0].workspaces[1].security_incidents;
            let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            let changes: Vec<Value> = rows
                .iter()
                .skip(2 * round + 1)
                .step_by(2 * 97)
                .map(|row| {
                    let mut change = row.clone();
                    change["LastModifiedTime"] = json!(now);
                    change["TimeGenerated"] = json!(now);
                    change["Status"] = json!("Active");
                    change
                })
                .collect();
            rows.extend(changes);
        },
        expected: |config| table_view(config, OTHER_WORKSPACE),
    })
    .await;
}
