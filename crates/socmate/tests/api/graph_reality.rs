//! Incident sync against Microsoft Graph as it really behaves (docs/azure/real-behaviour.md):
//! listings that stop past a `$skip` offset, `$expand=alerts` failing on heavy pages, the
//! tenant's Defender XDR feed shared by every workspace of the tenant, a tenant known by a domain
//! and by its id, roles written into tokens at issuance.

use std::collections::BTreeMap;

use azure_emulator::{Endpoint, Fault, FaultKind};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use socmate::incidents::{RunOutcome, SyncError};

use crate::helpers::{TENANT, TestApp, With, provider_body, spawn_app_with};
use crate::incidents::{emulator_view, socmate_view, with_incidents};

const DOMAIN: &str = "contoso.onmicrosoft.com";

async fn sync_status(app: &TestApp, provider: &str) -> Value {
    app.admin(
        Method::GET,
        &format!("/api/admin/siem-providers/{provider}/sync"),
        None,
    )
    .await
    .body
}

/// Every incident SoCMate stores, merged ones included.
async fn stored(app: &TestApp) -> BTreeMap<String, (String, String)> {
    let mut all = socmate_view(app, None).await;
    all.extend(socmate_view(app, Some("redirected")).await);
    all
}

fn served(app: &TestApp) -> BTreeMap<String, (String, String)> {
    let (mut live, merged) = emulator_view(app);
    for (id, status) in merged {
        let incident = app.emulator.config().tenants[0]
            .incidents
            .iter()
            .find(|i| i["id"] == id.as_str())
            .cloned()
            .unwrap();
        live.insert(
            id,
            (
                incident["lastUpdateDateTime"].as_str().unwrap().to_owned(),
                status,
            ),
        );
    }
    live
}

/// Graph stops returning `@odata.nextLink` past `$skip` 500 (the emulator's default, as Graph
/// documents its limit): a first window of 1,200 incidents still arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_stops_past_its_skip_limit_still_yields_every_incident() {
    let app = spawn_app_with(with_incidents(1_200, 21)).await;
    let provider = app.create_provider_id("Large tenant").await;
    let outcome = app.sync.run_once(&provider).await.unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { created: 1200, .. }),
        "{outcome:?}"
    );
    assert_eq!(stored(&app).await, served(&app));
    let status = sync_status(&app, &provider).await;
    assert_eq!(status["last_error"], Value::Null, "{status}");
    assert!(
        status["notes"].to_string().contains("time slices"),
        "{status}"
    );
    // No listing went deeper than Graph serves.
    for request in app.emulator.requests() {
        let skip = request
            .query
            .as_deref()
            .unwrap_or("")
            .split('&')
            .find_map(|p| p.strip_prefix("$skip="))
            .map_or(0, |s| s.parse::<u64>().unwrap());
        assert!(skip <= 450, "{request:?}");
    }
}

/// A page far over the size SoCMate reads (32 MiB) is not fatal: the sync reads smaller pages,
/// says so, and still stores every incident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_page_is_read_again_in_smaller_pages() {
    let app = spawn_app_with(with_incidents(80, 3)).await;
    app.emulator.inject(
        Fault::new(FaultKind::Oversized {
            bytes: 33 * 1024 * 1024,
        })
        .on(Endpoint::GraphIncidents)
        .times(1),
    );
    let provider = app.create_provider_id("Heavy pages").await;
    let outcome = app.sync.run_once(&provider).await.unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { created: 80, .. }),
        "{outcome:?}"
    );
    assert_eq!(stored(&app).await, served(&app));
    let status = sync_status(&app, &provider).await;
    assert!(
        status["notes"].to_string().contains("10 incidents a page"),
        "{status}"
    );
}

/// `$expand=alerts` answers HTTP 500 for any page holding a very large incident, every time:
/// the sync reads smaller pages, then pages without `$expand` and each incident's alerts
/// alone, and the heavy incident's alerts from `alerts_v2` — every incident with every alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_expand_500_still_yields_every_incident_with_every_alert() {
    let mut options = with_incidents(120, 5);
    let tenant = &mut options.emulator.tenants[0];
    let heavy = tenant.incidents[40]["id"].as_str().unwrap().to_owned();
    let template = tenant.alerts[0].clone();
    for n in 0..300 {
        let mut alert = template.clone();
        alert["id"] = json!(format!("heavy-{n}"));
        alert["incidentId"] = json!(heavy);
        alert["createdDateTime"] = tenant.incidents[40]["createdDateTime"].clone();
        tenant.alerts.push(alert);
    }
    options.emulator.graph_expand_alert_limit = Some(100);
    let app = spawn_app_with(options).await;
    let provider = app.create_provider_id("Heavy").await;
    let outcome = app.sync.run_once(&provider).await.unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { created: 120, .. }),
        "{outcome:?}"
    );

    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for alert in &app.emulator.config().tenants[0].alerts {
        *expected
            .entry(alert["incidentId"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let mut cursor = String::new();
    loop {
        let page = app
            .analyst(
                Method::GET,
                &format!("/api/incidents?limit=200{cursor}"),
                None,
            )
            .await
            .body;
        for incident in page["incidents"].as_array().unwrap() {
            let detail = app
                .analyst(
                    Method::GET,
                    &format!("/api/incidents/{}", incident["id"].as_str().unwrap()),
                    None,
                )
                .await
                .body;
            let external = detail["external_id"].as_str().unwrap();
            assert_eq!(
                detail["alerts"].as_array().unwrap().len(),
                expected.get(external).copied().unwrap_or(0),
                "alerts of incident {external}"
            );
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let status = sync_status(&app, &provider).await;
    let notes = status["notes"].to_string();
    assert!(notes.contains("one incident at a time"), "{status}");
    assert!(notes.contains(&format!("incident {heavy}")), "{status}");
    assert!(app.emulator.request_count(Endpoint::GraphAlerts) > 0);
}

/// A slice Graph counts but will not list whole, narrowed as far as it goes, is reported
/// incomplete — never as a success — and the watermark stays.
#[tokio::test]
async fn a_slice_graph_will_not_list_whole_is_reported_incomplete() {
    let mut options = with_incidents(60, 9);
    let at = options.emulator.tenants[0].incidents[0]["lastUpdateDateTime"].clone();
    for incident in &mut options.emulator.tenants[0].incidents {
        incident["lastUpdateDateTime"] = at.clone();
    }
    // Not one nextLink: only the first page of any listing.
    options.emulator.graph_max_skip = Some(0);
    let app = spawn_app_with(options).await;
    let provider = app.create_provider_id("Stubborn").await;
    let failed = app.sync.run_once(&provider).await;
    assert!(
        matches!(failed, Err(SyncError::Incomplete(_))),
        "{failed:?}"
    );
    let status = sync_status(&app, &provider).await;
    assert_eq!(status["last_error"]["code"], "incomplete", "{status}");
    assert!(
        status["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("of the 60 incidents it counted"),
        "{status}"
    );
    assert_eq!(status["watermark"], Value::Null);
    assert_eq!(status["last_success_at"], Value::Null);
}

/// Graph serves the tenant's Defender XDR incidents, whichever workspace asks: two providers of
/// one tenant (one typed as its id, one as its domain) cause one read per round, store each
/// incident once, and both list it.
#[tokio::test]
async fn two_providers_of_one_tenant_share_one_read_and_one_store() {
    let app = spawn_app_with(with_incidents(80, 13)).await;
    let by_id = app.create_provider_id("By id").await;
    let by_domain = app
        .admin(
            Method::POST,
            "/api/admin/siem-providers",
            Some(
                provider_body("By domain")
                    .with("tenant_id", json!(DOMAIN))
                    .with("sync_incidents", json!(true)),
            ),
        )
        .await;
    assert_eq!(by_domain.status, StatusCode::CREATED, "{}", by_domain.body);
    let by_domain = by_domain.body["id"].as_str().unwrap().to_owned();

    let outcomes = app.sync.sync_due().await;
    assert_eq!(outcomes.len(), 1, "one run for one tenant: {outcomes:?}");
    assert!(matches!(
        outcomes[0],
        Ok(RunOutcome::Completed { created: 80, .. })
    ));
    let reads = app.emulator.request_count(Endpoint::GraphIncidents);
    let outcomes = app.sync.sync_due().await;
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert!(
        app.emulator.request_count(Endpoint::GraphIncidents) - reads <= 2,
        "the second round read the tenant once"
    );

    assert_eq!(stored(&app).await, served(&app));
    for provider in [&by_id, &by_domain] {
        let listed = app
            .analyst(
                Method::GET,
                &format!("/api/incidents?provider_id={provider}&limit=1"),
                None,
            )
            .await
            .body;
        assert_eq!(
            listed["total"],
            socmate_view(&app, None).await.len(),
            "{listed}"
        );
        let status = sync_status(&app, provider).await;
        assert_eq!(status["scope"], format!("azure-tenant:{TENANT}"));
    }
    // The domain provider shows the tenant id Entra ID named beside what was typed.
    let shown = app
        .admin(
            Method::GET,
            &format!("/api/admin/siem-providers/{by_domain}"),
            None,
        )
        .await
        .body;
    assert_eq!(shown["tenant_id"], DOMAIN);
    assert_eq!(shown["resolved_tenant_id"], TENANT);
    let first = socmate_view(&app, None).await;
    let any = app
        .analyst(Method::GET, "/api/incidents?limit=1", None)
        .await
        .body["incidents"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let detail = app
        .analyst(Method::GET, &format!("/api/incidents/{any}"), None)
        .await
        .body;
    let mut both = vec![by_id.clone(), by_domain.clone()];
    both.sort();
    assert_eq!(detail["provider_ids"], json!(both));
    assert_eq!(detail["scope"], "tenant");
    assert!(!first.is_empty());
}

/// A tenant first synced under its domain, then under its id, keeps one copy of each incident.
#[tokio::test]
async fn a_tenant_typed_as_a_domain_then_as_its_id_stores_each_incident_once() {
    let app = spawn_app_with(with_incidents(40, 17)).await;
    let by_domain = app
        .admin(
            Method::POST,
            "/api/admin/siem-providers",
            Some(provider_body("By domain").with("tenant_id", json!(DOMAIN))),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.sync.run_once(&by_domain).await.unwrap();
    app.admin(
        Method::DELETE,
        &format!("/api/admin/siem-providers/{by_domain}"),
        None,
    )
    .await;
    let by_id = app.create_provider_id("By id").await;
    let outcome = app.sync.run_once(&by_id).await.unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { created: 0, .. }),
        "{outcome:?}"
    );
    assert_eq!(stored(&app).await, served(&app));
}

/// Defender-only incidents (no Sentinel alert) carry the products of their alerts and the
/// tenant, and both filter the list.
#[tokio::test]
async fn incidents_carry_their_sources_and_tenant_and_can_be_filtered_by_them() {
    let app = spawn_app_with(with_incidents(60, 23)).await;
    let provider = app.create_provider_id("Sources").await;
    app.sync.run_once(&provider).await.unwrap();
    let config = app.emulator.config();
    let tenant = &config.tenants[0];
    let live: Vec<&Value> = tenant
        .incidents
        .iter()
        .filter(|i| i["status"] != "redirected")
        .collect();
    let with_source = |source: &str| {
        live.iter()
            .filter(|i| {
                tenant
                    .alerts
                    .iter()
                    .any(|a| a["incidentId"] == i["id"] && a["serviceSource"] == source)
            })
            .count()
    };
    for source in [
        "microsoftDefenderForEndpoint",
        "microsoftDefenderForOffice365",
        "microsoftSentinel",
    ] {
        let listed = app
            .analyst(
                Method::GET,
                &format!("/api/incidents?source={source}&limit=200"),
                None,
            )
            .await
            .body;
        assert_eq!(listed["total"], with_source(source), "{source}");
        for incident in listed["incidents"].as_array().unwrap() {
            let sources = incident["sources"].as_array().unwrap();
            assert!(sources.contains(&json!(source)), "{incident}");
        }
    }
    assert!(with_source("microsoftDefenderForEndpoint") > 0);
    let mine = app
        .analyst(
            Method::GET,
            &format!("/api/incidents?tenant_id={}&limit=1", TENANT.to_uppercase()),
            None,
        )
        .await
        .body;
    assert_eq!(mine["total"], live.len());
    let other = app
        .analyst(
            Method::GET,
            "/api/incidents?tenant_id=00000000-0000-4000-8000-000000000000&limit=1",
            None,
        )
        .await
        .body;
    assert_eq!(other["total"], 0);
}

/// Application roles are in the token from its issuance: consent granted after a failed sync is
/// used by the very next sync, because the token without the role was dropped after the 403.
#[tokio::test]
async fn consent_granted_after_a_failed_sync_is_used_by_the_next_sync() {
    let app = spawn_app_with(with_incidents(20, 29)).await;
    let provider = app.create_provider_id("Consent").await;
    app.emulator
        .update(|c| c.tenants[0].apps[0].roles = vec!["Data.Read".into()]);
    assert!(app.sync.run_once(&provider).await.is_err());
    assert_eq!(
        sync_status(&app, &provider).await["last_error"]["code"],
        "missing_permission"
    );
    app.emulator.update(|c| {
        c.tenants[0].apps[0].roles = azure_emulator::ALL_READ_ROLES
            .iter()
            .map(|r| (*r).to_owned())
            .collect()
    });
    let outcome = app.sync.run_once(&provider).await.unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { created: 20, .. }),
        "{outcome:?}"
    );
}
