//! Incident sync against the emulator's Graph: complete, idempotent, newest version wins,
//! merges shown once, throttling and 5xx survived, failures recorded.

use std::collections::BTreeMap;
use std::time::Duration;

use azure_emulator::{Endpoint, Fault, FaultKind, generate_incidents_for};
use chrono::{SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use socmate::incidents::RunOutcome;

use crate::helpers::{Options, TENANT, TestApp, provider_body, spawn_app_with, wait_until};

/// external id → (lastUpdateDateTime, status) of what the emulator serves, merged ones apart.
pub fn emulator_view(
    app: &TestApp,
) -> (BTreeMap<String, (String, String)>, BTreeMap<String, String>) {
    let config = app.emulator.config();
    let (mut live, mut merged) = (BTreeMap::new(), BTreeMap::new());
    for incident in &config.tenants[0].incidents {
        let id = incident["id"].as_str().unwrap().to_owned();
        let status = incident["status"].as_str().unwrap().to_owned();
        if status == "redirected" {
            merged.insert(id, status);
        } else {
            live.insert(
                id,
                (
                    incident["lastUpdateDateTime"].as_str().unwrap().to_owned(),
                    status,
                ),
            );
        }
    }
    (live, merged)
}

/// The same view from SoCMate's API, following every cursor.
pub async fn socmate_view(
    app: &TestApp,
    status: Option<&str>,
) -> BTreeMap<String, (String, String)> {
    incidents_of(&app.http, &app.base, &app.analyst_token, status).await
}

/// Every incident a SoCMate server lists, asserting that none appears twice.
pub async fn incidents_of(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    status: Option<&str>,
) -> BTreeMap<String, (String, String)> {
    let mut seen = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/incidents?limit=200");
        if let Some(s) = status {
            url.push_str(&format!("&status={s}"));
        }
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = http.get(&url).bearer_auth(token).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let page: Value = page.json().await.unwrap();
        for incident in page["incidents"].as_array().unwrap() {
            let previous = seen.insert(
                incident["external_id"].as_str().unwrap().to_owned(),
                (
                    incident["last_update_at"].as_str().unwrap().to_owned(),
                    incident["status"].as_str().unwrap().to_owned(),
                ),
            );
            assert!(
                previous.is_none(),
                "duplicate incident {}",
                incident["external_id"]
            );
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return seen,
        }
    }
}

/// `n` generated incidents, all updated within the last six days (inside the first sync window).
pub fn with_incidents(n: usize, seed: u64) -> Options {
    let mut options = Options::default();
    let start = Utc::now() - chrono::Duration::days(6);
    let (mut incidents, alerts) = generate_incidents_for(TENANT, n, seed, start);
    let step = chrono::Duration::days(6).num_milliseconds() / (n as i64 + 1);
    for (i, incident) in incidents.iter_mut().enumerate() {
        let at = start + chrono::Duration::milliseconds(step * (i as i64 + 1));
        incident["createdDateTime"] = json!(stamp(at - chrono::Duration::minutes(1)));
        incident["lastUpdateDateTime"] = json!(stamp(at));
    }
    options.emulator.tenants[0].incidents = incidents;
    options.emulator.tenants[0].alerts = alerts;
    options
}

fn stamp(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
        .replace("00Z", "Z")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_incidents_sync_completely_through_updates_merges_and_faults() {
    let app = spawn_app_with(with_incidents(5_000, 7)).await;
    let provider = app.create_provider_id("Production Sentinel").await;

    let outcome = app.sync.run_once(&provider).await.unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { created: 5000, .. }),
        "{outcome:?}"
    );
    let (live, _) = emulator_view(&app);
    assert_eq!(socmate_view(&app, None).await, live);

    // Between runs: updates, late arrivals inside the look-back margin, and merges.
    let watermark = live.values().map(|(t, _)| t.clone()).max().unwrap();
    let watermark = chrono::DateTime::parse_from_rfc3339(&watermark)
        .unwrap()
        .to_utc();
    app.emulator.update(|c| {
        let incidents = &mut c.tenants[0].incidents;
        for (i, incident) in incidents.iter_mut().enumerate() {
            if i % 25 == 0 {
                incident["status"] = json!("resolved");
                incident["lastUpdateDateTime"] = json!(stamp(Utc::now()));
            }
        }
        for i in 0..20 {
            let target = incidents[i * 2 + 1]["id"].clone();
            incidents[i * 2]["status"] = json!("redirected");
            incidents[i * 2]["redirectIncidentId"] = target;
            incidents[i * 2]["lastUpdateDateTime"] = json!(stamp(Utc::now()));
        }
        for i in 0..50 {
            let mut late = incidents[100].clone();
            late["id"] = json!(format!("{}", 900_000 + i));
            late["status"] = json!("active");
            late["lastUpdateDateTime"] = json!(stamp(watermark - chrono::Duration::minutes(5)));
            incidents.push(late);
        }
    });
    app.emulator.inject(
        Fault::new(FaultKind::Throttle {
            retry_after: "0.2".into(),
        })
        .on(Endpoint::GraphIncidents)
        .times(2),
    );
    app.emulator.inject(
        Fault::new(FaultKind::Status { status: 503 })
            .on(Endpoint::GraphIncidents)
            .times(2),
    );
    let outcome = app.sync.run_once(&provider).await.unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { created: 50, .. }),
        "{outcome:?}"
    );

    let (live, merged) = emulator_view(&app);
    assert_eq!(
        socmate_view(&app, None).await,
        live,
        "newest version of every incident, merged ones hidden"
    );
    let redirected = socmate_view(&app, Some("redirected")).await;
    assert_eq!(
        redirected.keys().collect::<Vec<_>>(),
        merged.keys().collect::<Vec<_>>()
    );

    // Nothing new: a third run reads the look-back window and changes nothing.
    let outcome = app.sync.run_once(&provider).await.unwrap();
    assert!(
        matches!(
            outcome,
            RunOutcome::Completed {
                created: 0,
                updated: 0,
                ..
            }
        ),
        "{outcome:?}"
    );

    // Detail carries the alerts, the tenant, and which providers saw it.
    let list = app
        .analyst(Method::GET, "/api/incidents?limit=1&severity=high", None)
        .await
        .body;
    assert!(list["total"].as_i64().unwrap() > 0);
    let id = list["incidents"][0]["id"].as_str().unwrap();
    let detail = app
        .analyst(Method::GET, &format!("/api/incidents/{id}"), None)
        .await
        .body;
    assert_eq!(detail["tenant_id"], TENANT);
    assert_eq!(detail["severity"], "high");
    assert_eq!(detail["provider_ids"], json!([provider]));
    assert!(!detail["alerts"].as_array().unwrap().is_empty(), "{detail}");
    assert!(detail["alerts"][0]["external_id"].is_string());
}

#[tokio::test]
async fn could_not_read_is_recorded_and_never_looks_like_nothing_new() {
    let app = spawn_app_with(with_incidents(30, 3)).await;
    let provider = app.create_provider_id("No roles").await;
    app.emulator
        .update(|c| c.tenants[0].apps[0].roles = vec!["Data.Read".into()]);
    assert!(app.sync.run_once(&provider).await.is_err());
    let status = app
        .admin(
            Method::GET,
            &format!("/api/admin/siem-providers/{provider}/sync"),
            None,
        )
        .await
        .body;
    assert_eq!(status["state"], "idle");
    assert_eq!(
        status["last_error"]["code"], "missing_permission",
        "{status}"
    );
    assert!(
        status["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("SecurityIncident.Read.All")
    );
    assert_eq!(
        status["watermark"],
        Value::Null,
        "a failed run does not advance the watermark"
    );
    assert_eq!(status["last_success_at"], Value::Null);

    // Persistent 5xx: retried, then recorded.
    app.emulator.update(|c| {
        c.tenants[0].apps[0].roles = azure_emulator::ALL_READ_ROLES
            .iter()
            .map(|r| r.to_string())
            .collect()
    });
    // (Every way of reading fails: expanded pages, smaller ones, plain ones.)
    app.emulator
        .inject(Fault::new(FaultKind::Status { status: 500 }).on(Endpoint::GraphIncidents));
    assert!(app.sync.run_once(&provider).await.is_err());
    let status = app
        .admin(
            Method::GET,
            &format!("/api/admin/siem-providers/{provider}/sync"),
            None,
        )
        .await
        .body;
    assert_eq!(status["last_error"]["code"], "upstream_unavailable");
    assert_eq!(status["watermark"], Value::Null);

    // Once Graph answers, everything arrives and the error clears.
    app.emulator.clear_faults();
    app.sync.run_once(&provider).await.unwrap();
    let status = app
        .admin(
            Method::GET,
            &format!("/api/admin/siem-providers/{provider}/sync"),
            None,
        )
        .await
        .body;
    assert_eq!(status["last_error"], Value::Null);
    assert!(status["watermark"].is_string());
    assert_eq!(status["fetched"], 30);
    assert_eq!(status["created"], 30);
}

#[tokio::test]
async fn the_trigger_starts_a_run_and_the_status_follows_it() {
    let app = spawn_app_with(with_incidents(200, 5)).await;
    let provider = app.create_provider_id("Triggered").await;
    let path = format!("/api/admin/siem-providers/{provider}/sync");
    let reply = app.admin(Method::POST, &path, None).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let status = wait_until(
        Duration::from_secs(20),
        "the triggered run to finish",
        || async {
            let status = app.admin(Method::GET, &path, None).await.body;
            let done = status["state"] == "idle" && status["last_success_at"].is_string();
            if done {
                Ok(status)
            } else {
                Err(status.to_string())
            }
        },
    )
    .await;
    assert_eq!(status["fetched"], 200);
    let reply = app
        .admin(
            Method::POST,
            "/api/admin/siem-providers/0123456789abcdef01234567/sync",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = app
        .analyst(Method::GET, "/api/incidents?limit=500", None)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = app
        .analyst(Method::GET, "/api/incidents?updated_since=yesterday", None)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = app
        .analyst(Method::GET, "/api/incidents/0123456789abcdef01234567", None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_scheduler_syncs_the_default_and_opted_in_providers_only() {
    let options = Options {
        sync_interval: Duration::from_millis(500),
        ..with_incidents(20, 9)
    };
    let app = spawn_app_with(options).await;
    let default = app.create_provider_id("Default").await;
    let plain = app.create_provider_id("Not opted in").await;
    let mut body = provider_body("Opted in");
    body["sync_incidents"] = json!(true);
    let opted = app.create_provider_from(body).await;
    assert_eq!(opted["sync_incidents"], true);
    let opted = opted["id"].as_str().unwrap().to_owned();

    let status = |id: String| {
        let app = &app;
        async move {
            app.admin(
                Method::GET,
                &format!("/api/admin/siem-providers/{id}/sync"),
                None,
            )
            .await
            .body
        }
    };
    wait_until(
        Duration::from_secs(20),
        "both providers to sync",
        || async {
            let (d, o) = (status(default.clone()).await, status(opted.clone()).await);
            let done = d["last_success_at"].is_string() && o["last_success_at"].is_string();
            if done {
                Ok(())
            } else {
                Err(format!("{d} {o}"))
            }
        },
    )
    .await;
    assert_eq!(
        status(plain.clone()).await["last_started_at"],
        Value::Null,
        "never synced without opting in"
    );
    // Both providers saw the same tenant's incidents: stored once, linked to both.
    let list = app
        .analyst(Method::GET, "/api/incidents?limit=200", None)
        .await
        .body;
    assert_eq!(list["total"], emulator_view(&app).0.len());
    let id = list["incidents"][0]["id"].as_str().unwrap();
    let detail = app
        .analyst(Method::GET, &format!("/api/incidents/{id}"), None)
        .await
        .body;
    let mut expected = vec![default.clone(), opted.clone()];
    expected.sort();
    assert_eq!(detail["provider_ids"], json!(expected));
    let filtered = app
        .analyst(
            Method::GET,
            &format!("/api/incidents?provider_id={plain}"),
            None,
        )
        .await
        .body;
    assert_eq!(filtered["total"], 0);
}

#[tokio::test]
async fn a_paused_holders_writes_are_fenced_off() {
    use socmate::incidents::store::{self, RunEnd, SyncStoreError};
    let app = spawn_app_with(with_incidents(10, 1)).await;
    let provider = app.create_provider_id("Fenced").await;
    let db = app.sync.db();
    let scope = format!("azure-tenant:{TENANT}");
    store::adopt_scope(db, &provider, &scope, &[])
        .await
        .unwrap();
    let old = store::acquire_lease(db, &scope, "replica-a")
        .await
        .unwrap()
        .expect("free lease");
    assert!(
        store::acquire_lease(db, &scope, "replica-b")
            .await
            .unwrap()
            .is_none(),
        "a live lease is exclusive"
    );

    // Replica A stalls past its lease; replica B takes over.
    let expire = "UPDATE sync_scopes SET lease_expires_ns = 0 WHERE scope = $1";
    match crate::secrets::connect(&app).await {
        crate::secrets::Conn::Sqlite(mut c) => sqlx::query(expire)
            .bind(&scope)
            .execute(&mut c)
            .await
            .map(drop)
            .unwrap(),
        crate::secrets::Conn::Pg(mut c) => sqlx::query(expire)
            .bind(&scope)
            .execute(&mut c)
            .await
            .map(drop)
            .unwrap(),
    }
    let new = store::acquire_lease(db, &scope, "replica-b")
        .await
        .unwrap()
        .expect("expired lease");
    assert_eq!(new.generation, old.generation + 1);

    // A wakes up: its page write and its watermark are both refused.
    assert!(matches!(
        store::commit_page(db, &old, &[]).await,
        Err(SyncStoreError::LeaseLost)
    ));
    let stale = RunEnd {
        watermark: Some(("2099-01-01T00:00:00Z", i64::MAX)),
        error: None,
        skipped: 0,
        notes: &[],
    };
    assert!(matches!(
        store::finish(db, &old, &stale).await,
        Err(SyncStoreError::LeaseLost)
    ));
    store::commit_page(db, &new, &[]).await.unwrap();
    let clean = RunEnd {
        watermark: None,
        error: None,
        skipped: 0,
        notes: &[],
    };
    store::finish(db, &new, &clean).await.unwrap();
    let status = app
        .admin(
            Method::GET,
            &format!("/api/admin/siem-providers/{provider}/sync"),
            None,
        )
        .await
        .body;
    assert_eq!(
        status["watermark"],
        Value::Null,
        "the fenced-off watermark never landed"
    );
}

#[tokio::test]
async fn the_list_says_how_current_it_is_and_when_the_last_run_failed() {
    let app = spawn_app_with(with_incidents(3, 11)).await;
    let provider = app.create_provider_id("Fresh").await;
    let before = app.analyst(Method::GET, "/api/incidents", None).await;
    assert_eq!(
        before.body["synced"],
        json!({"as_of": null, "last_run_failed": false})
    );
    app.sync.run_once(&provider).await.unwrap();
    let after = app.analyst(Method::GET, "/api/incidents", None).await;
    assert!(
        after.body["synced"]["as_of"].is_string(),
        "{}",
        after.body["synced"]
    );
    assert_eq!(after.body["synced"]["last_run_failed"], false);

    app.emulator
        .inject(Fault::new(FaultKind::Status { status: 403 }).on(Endpoint::GraphIncidents));
    assert!(app.sync.run_once(&provider).await.is_err());
    let failed = app.analyst(Method::GET, "/api/incidents", None).await;
    assert_eq!(
        failed.body["synced"]["last_run_failed"], true,
        "{}",
        failed.body["synced"]
    );
    assert!(failed.body["synced"]["as_of"].is_string());
}

/// Every provider change wakes the scheduler, but rounds never overlap and start at least a
/// second apart: a burst of 30 admin writes costs a round a second. The default provider's secret
/// is one Entra ID refuses, so every round asks for a token and token requests count rounds.
#[tokio::test]
async fn a_burst_of_provider_changes_costs_a_sync_round_a_second_not_one_per_change() {
    let app = spawn_app_with(Options {
        sync_interval: Duration::from_secs(3600),
        ..Options::default()
    })
    .await;
    let mut refused = provider_body("Refused secret");
    refused["client_secret"] = json!(format!("{}-not-this-app", crate::helpers::CANARY));
    app.create_provider_from(refused).await;
    // The start-up round and the one the first create woke are behind us.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    app.emulator.clear_requests();

    let started = std::time::Instant::now();
    for n in 0..30 {
        app.create_provider_id(&format!("Burst {n}")).await;
    }
    let burst = started.elapsed();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let window = started.elapsed();
    let rounds = app.emulator.request_count(Endpoint::Token);
    // One round may start at the window's first instant, then one per second at most.
    let most = window.as_secs() as usize + 2;
    assert!(
        (1..=most).contains(&rounds),
        "{rounds} token requests for 30 changes in {burst:?} (window {window:?}, at most {most})"
    );
}
