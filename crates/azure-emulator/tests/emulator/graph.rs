//! Microsoft Graph security incidents/alerts_v2: auth and role errors, paging by nextLink,
//! `$top` limits (fixture text), `$filter`, `$orderby`, `$expand=alerts`.

use crate::common::*;
use azure_emulator::{EmulatorConfig, RunningEmulator, generate_incidents};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn config_with(n: usize) -> EmulatorConfig {
    let mut c = config();
    let (incidents, alerts) = generate_incidents(n, 42, start_time());
    c.tenants[0].incidents = incidents;
    c.tenants[0].alerts = alerts;
    c
}

fn instant(v: &Value, prop: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v[prop].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// Follows nextLink from `first`, returning all pages.
async fn all_pages(first: String, bearer: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut next = Some(first);
    while let Some(url) = next.take() {
        let (s, h, b) = get(&url, Some(bearer)).await;
        assert_eq!(s, 200, "{b}");
        assert!(
            h["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        assert_eq!(h["request-id"].to_str().unwrap().len(), 36);
        let page = json(&b);
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
        pages.push(page);
        assert!(pages.len() < 20, "paging does not terminate");
    }
    pages
}

#[tokio::test]
async fn pages_120_incidents_by_next_link() {
    let emu = start_with(config_with(120)).await;
    let t = token(&emu, GRAPH_SCOPE).await;
    let pages = all_pages(format!("{}/v1.0/security/incidents?$top=50", emu.url()), &t).await;
    let sizes: Vec<usize> = pages
        .iter()
        .map(|p| p["value"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![50, 50, 20]);
    assert_eq!(
        pages[0]["@odata.context"],
        format!("{}/v1.0/$metadata#security/incidents", emu.url())
    );
    for p in &pages[..2] {
        let link = p["@odata.nextLink"].as_str().unwrap();
        assert!(
            link.starts_with(&format!("{}/v1.0/security/incidents?", emu.url())),
            "{link}"
        );
        assert!(link.contains("$skip="), "{link}");
    }
    let all: Vec<&Value> = pages
        .iter()
        .flat_map(|p| p["value"].as_array().unwrap())
        .collect();
    let mut ids: Vec<&str> = all.iter().map(|i| i["id"].as_str().unwrap()).collect();
    // Default order: createdDateTime desc (newest first).
    for w in all.windows(2) {
        assert!(instant(w[0], "createdDateTime") >= instant(w[1], "createdDateTime"));
    }
    // Without $expand there is no alerts property.
    assert!(all.iter().all(|i| i.get("alerts").is_none()));
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 120);
    assert_eq!(
        emu.request_count(azure_emulator::Endpoint::GraphIncidents),
        3
    );
}

#[tokio::test]
async fn top_limits_use_fixture_text() {
    let emu = start_with(config_with(3)).await;
    let t = token(&emu, GRAPH_SCOPE).await;
    let (s, h, b) = get(
        &format!("{}/v1.0/security/incidents?$top=100", emu.url()),
        Some(&t),
    )
    .await;
    assert_eq!(s, 400);
    let b = json(&b);
    assert_eq!(b["error"]["code"], "");
    assert_eq!(
        b["error"]["message"],
        "The query specified in the URI is not valid. The limit of '50' for Top query has been exceeded. The value from the incoming request is '100'."
    );
    assert_eq!(b["error"]["details"], json!([]));
    let inner = &b["error"]["innerError"];
    assert_eq!(inner["date"].as_str().unwrap().len(), 19);
    assert_eq!(inner["request-id"], h["request-id"].to_str().unwrap());
    assert_eq!(inner["client-request-id"], inner["request-id"]);

    let (s, _, b) = get(
        &format!("{}/v1.0/security/alerts_v2?$top=2001", emu.url()),
        Some(&t),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        json(&b)["error"]["message"],
        "The query specified in the URI is not valid. The limit of '2000' for Top query has been exceeded. The value from the incoming request is '2001'."
    );
    let (s, _, _) = get(
        &format!("{}/v1.0/security/alerts_v2?$top=2000", emu.url()),
        Some(&t),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, b) = get(
        &format!("{}/v1.0/security/incidents?$top=abc", emu.url()),
        Some(&t),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(json(&b)["error"]["code"], "BadRequest");
}

#[tokio::test]
async fn filter_and_orderby() {
    let emu = start_with(config_with(120)).await;
    let t = token(&emu, GRAPH_SCOPE).await;
    let all = emu.config().tenants[0].incidents.clone();
    let from = DateTime::parse_from_rfc3339("2026-01-01T06:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let to = DateTime::parse_from_rfc3339("2026-01-01T09:00:00.5Z")
        .unwrap()
        .with_timezone(&Utc);
    let expected = all
        .iter()
        .filter(|i| {
            instant(i, "lastUpdateDateTime") >= from && instant(i, "lastUpdateDateTime") < to
        })
        .count();
    assert!(expected > 0 && expected < 120, "{expected}");

    let first = format!(
        "{}/v1.0/security/incidents?$filter=lastUpdateDateTime+ge+2026-01-01T06:00:00Z+and+lastUpdateDateTime+lt+2026-01-01T09:00:00.5000000Z&$orderby=lastUpdateDateTime%20asc&$top=10",
        emu.url()
    );
    let pages = all_pages(first, &t).await;
    let got: Vec<&Value> = pages
        .iter()
        .flat_map(|p| p["value"].as_array().unwrap())
        .collect();
    assert_eq!(got.len(), expected);
    for w in got.windows(2) {
        assert!(instant(w[0], "lastUpdateDateTime") <= instant(w[1], "lastUpdateDateTime"));
    }
    // The filter is carried in nextLink.
    if let Some(link) = pages[0]["@odata.nextLink"].as_str() {
        assert!(link.contains("$filter=lastUpdateDateTime"), "{link}");
    }

    // gt/le and createdDateTime, desc order, status equality.
    let url = format!(
        "{}/v1.0/security/incidents?$filter=createdDateTime gt 2026-01-01T01:00:00Z and createdDateTime le 2026-01-01T02:00:00Z and status eq 'active'&$orderby=lastUpdateDateTime desc",
        emu.url()
    );
    let (s, _, b) = get(&url, Some(&t)).await;
    assert_eq!(s, 200, "{b}");
    let b = json(&b);
    let v = b["value"].as_array().unwrap();
    let expected = all
        .iter()
        .filter(|i| {
            let c = instant(i, "createdDateTime");
            c > DateTime::parse_from_rfc3339("2026-01-01T01:00:00Z").unwrap()
                && c <= DateTime::parse_from_rfc3339("2026-01-01T02:00:00Z").unwrap()
                && i["status"] == "active"
        })
        .count();
    assert_eq!(v.len(), expected);
    for w in v.windows(2) {
        assert!(instant(&w[0], "lastUpdateDateTime") >= instant(&w[1], "lastUpdateDateTime"));
    }

    // Unsupported filters are a 400 Graph error.
    for bad in [
        "displayName eq 'x'",
        "lastUpdateDateTime ge '2026-01-01T00:00:00Z'",
        "lastUpdateDateTime ge 2026-01-01T00:00:00Z or status eq 'active'",
        "lastUpdateDateTime ge yesterday",
    ] {
        let (s, _, b) = get(
            &format!("{}/v1.0/security/incidents?$filter={bad}", emu.url()),
            Some(&t),
        )
        .await;
        assert_eq!(s, 400, "{bad}: {b}");
        let b = json(&b);
        assert_eq!(b["error"]["code"], "BadRequest");
        assert!(!b["error"]["message"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn expand_alerts_and_get_by_id() {
    let mut cfg = config_with(5);
    // An incident carrying its own alerts array keeps it.
    cfg.tenants[0].incidents[0]["alerts"] = json!([{"id": "inline-1", "incidentId": "30001"}]);
    let emu = start_with(cfg).await;
    let t = token(&emu, GRAPH_SCOPE).await;
    let alerts = emu.config().tenants[0].alerts.clone();

    let (s, _, b) = get(
        &format!("{}/v1.0/security/incidents?$expand=alerts", emu.url()),
        Some(&t),
    )
    .await;
    assert_eq!(s, 200);
    let b = json(&b);
    assert_eq!(
        b["@odata.context"],
        format!("{}/v1.0/$metadata#security/incidents(alerts())", emu.url())
    );
    for inc in b["value"].as_array().unwrap() {
        let got = inc["alerts"].as_array().unwrap();
        if inc["id"] == "30001" {
            assert_eq!(got.len(), 1);
            assert_eq!(got[0]["id"], "inline-1");
        } else {
            let expected: Vec<&Value> = alerts
                .iter()
                .filter(|a| a["incidentId"] == inc["id"])
                .collect();
            assert!(!expected.is_empty());
            assert_eq!(got.len(), expected.len());
            assert!(got.iter().all(|a| a["incidentId"] == inc["id"]));
        }
    }

    let (s, _, b) = get(
        &format!("{}/v1.0/security/incidents/30002", emu.url()),
        Some(&t),
    )
    .await;
    assert_eq!(s, 200);
    let b = json(&b);
    assert_eq!(b["id"], "30002");
    assert!(b.get("alerts").is_none());
    let (s, _, b) = get(
        &format!("{}/v1.0/security/incidents/30001", emu.url()),
        Some(&t),
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        json(&b).get("alerts").is_none(),
        "inline alerts are stripped without $expand"
    );
    let (s, _, b) = get(
        &format!("{}/v1.0/security/incidents/99999", emu.url()),
        Some(&t),
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(json(&b)["error"]["code"], "NotFound");

    let (s, _, b) = get(
        &format!("{}/v1.0/security/alerts_v2?$top=3", emu.url()),
        Some(&t),
    )
    .await;
    assert_eq!(s, 200);
    let b = json(&b);
    assert_eq!(b["value"].as_array().unwrap().len(), 3.min(alerts.len()));
    assert_eq!(
        b["@odata.context"],
        format!("{}/v1.0/$metadata#security/alerts_v2", emu.url())
    );
}

async fn graph_error(emu: &RunningEmulator, path: &str, bearer: Option<&str>) -> (u16, Value) {
    let (s, h, b) = get(&format!("{}{path}", emu.url()), bearer).await;
    let b = json(&b);
    let inner = &b["error"]["innerError"];
    assert_eq!(
        inner["request-id"],
        h["request-id"].to_str().unwrap(),
        "{b}"
    );
    assert!(inner["date"].is_string());
    (s, b)
}

#[tokio::test]
async fn auth_errors_and_missing_roles() {
    let emu = start_with(config_with(2)).await;
    let (s, b) = graph_error(&emu, "/v1.0/security/incidents", None).await;
    assert_eq!(s, 401);
    assert_eq!(b["error"]["code"], "InvalidAuthenticationToken");
    assert_eq!(b["error"]["message"], "Access token is empty.");

    let (s, b) = graph_error(&emu, "/v1.0/security/incidents", Some("garbage")).await;
    assert_eq!(s, 401);
    assert_eq!(b["error"]["message"], "Invalid token");

    let la = token(&emu, LA_SCOPE).await;
    let (s, b) = graph_error(&emu, "/v1.0/security/alerts_v2", Some(&la)).await;
    assert_eq!(s, 401);
    assert_eq!(
        b["error"]["message"],
        "Access token validation failure. Invalid audience."
    );

    // Roles are written into a token when it is issued: a token from before the change keeps
    // the roles it was issued with; a new one carries the new roles.
    let before = token(&emu, GRAPH_SCOPE).await;
    emu.update(|c| c.tenants[0].apps[0].roles = vec!["Data.Read".into()]);
    let (s, _, _) = get(
        &format!("{}/v1.0/security/incidents", emu.url()),
        Some(&before),
    )
    .await;
    assert_eq!(
        s, 200,
        "the old token still carries SecurityIncident.Read.All"
    );
    let t = token(&emu, GRAPH_SCOPE).await;
    let (s, b) = graph_error(&emu, "/v1.0/security/incidents", Some(&t)).await;
    assert_eq!(s, 403);
    assert_eq!(b["error"]["code"], "Forbidden");
    assert_eq!(
        b["error"]["message"],
        "Missing application roles. API required roles: SecurityIncident.Read.All,SecurityIncident.ReadWrite.All, application roles: Data.Read."
    );

    emu.update(|c| c.tenants[0].apps[0].roles.clear());
    let t = token(&emu, GRAPH_SCOPE).await;
    let (s, b) = graph_error(&emu, "/v1.0/security/alerts_v2", Some(&t)).await;
    assert_eq!(s, 403);
    // Fixture graph-error-403-missing-roles.json.
    assert_eq!(
        b["error"]["message"],
        "Missing application roles. API required roles: SecurityAlert.Read.All,SecurityAlert.ReadWrite.All,SecurityIncident.Read.All,SecurityIncident.ReadWrite.All, application roles: ."
    );

    // alerts_v2 also accepts the incident role; incidents accept the ReadWrite role.
    emu.update(|c| c.tenants[0].apps[0].roles = vec!["SecurityIncident.ReadWrite.All".into()]);
    let t = token(&emu, GRAPH_SCOPE).await;
    let (s, _, _) = get(&format!("{}/v1.0/security/alerts_v2", emu.url()), Some(&t)).await;
    assert_eq!(s, 200);
    let (s, _, _) = get(&format!("{}/v1.0/security/incidents", emu.url()), Some(&t)).await;
    assert_eq!(s, 200);

    emu.expire_tokens();
    let (s, b) = graph_error(&emu, "/v1.0/security/incidents", Some(&t)).await;
    assert_eq!(s, 401);
    assert_eq!(
        b["error"]["message"],
        "Access token has expired or is not yet valid."
    );
}

/// Listings index the tenant's data once per configuration; a change must show up at once.
#[tokio::test]
async fn data_changes_are_seen_by_the_next_listing() {
    let emu = start_with(config_with(3)).await;
    let t = token(&emu, GRAPH_SCOPE).await;
    let list = |query: &'static str| {
        let url = format!("{}/v1.0/security/{query}", emu.url());
        let t = t.clone();
        async move {
            let (s, _, b) = get(&url, Some(&t)).await;
            assert_eq!(s, 200, "{b}");
            json(&b)["value"].as_array().unwrap().clone()
        }
    };
    let ids = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = list("incidents?$expand=alerts").await;
    assert_eq!(ids(&first), vec!["30003", "30002", "30001"]);
    assert_eq!(
        list("alerts_v2").await.len(),
        emu.config().tenants[0].alerts.len()
    );

    // Make 30001 the newest, give it one more alert (numeric incidentId) and add an incident.
    emu.update(|c| {
        let tenant = &mut c.tenants[0];
        tenant.incidents[0]["createdDateTime"] = json!("2027-01-01T00:00:00Z");
        tenant
            .alerts
            .push(json!({"id": "extra", "incidentId": 30001,
            "createdDateTime": "2027-01-01T00:00:00Z"}));
        let mut added = tenant.incidents[1].clone();
        added["id"] = json!("7");
        tenant.incidents.push(added);
    });
    let second = list("incidents?$expand=alerts").await;
    assert_eq!(ids(&second), vec!["30001", "30003", "7", "30002"]);
    let alerts_of_30001 = second[0]["alerts"].as_array().unwrap();
    assert_eq!(alerts_of_30001.last().unwrap()["id"], "extra");
    assert_eq!(
        alerts_of_30001.len(),
        first[2]["alerts"].as_array().unwrap().len() + 1
    );
    assert_eq!(second[2]["alerts"], json!([]));
    assert_eq!(list("alerts_v2").await[0]["id"], "extra");

    // Replacing the whole config through the control API is seen as well.
    let resp = client()
        .put(format!("{}/_emulator/config", emu.url()))
        .json(&config_with(1))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    let t = token(&emu, GRAPH_SCOPE).await;
    let (s, _, b) = get(
        &format!("{}/v1.0/security/incidents?$expand=alerts", emu.url()),
        Some(&t),
    )
    .await;
    assert_eq!(s, 200);
    let third = json(&b)["value"].as_array().unwrap().clone();
    assert_eq!(ids(&third), vec!["30001"]);
    assert_eq!(third[0]["alerts"], first[2]["alerts"]);
}
