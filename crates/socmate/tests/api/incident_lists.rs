//! `GET /api/incidents` over incidents written by the sync's own store code: text search, owner,
//! source and provider filters, the three sorts with keyset paging (every match once, in order),
//! the capped total, and a page write that lists an incident twice.

use chrono::{TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use socmate::incidents::store::{self, Lease};
use socmate::siem::{Alert, Incident};

use crate::helpers::{Options, TENANT, TestApp, spawn_app_with};

const SEVERITIES: [&str; 4] = ["informational", "low", "medium", "high"];
const TITLES: [&str; 3] = [
    "Brute force against Kai",
    "Suspicious inbox rule",
    "Ransomware 100% encrypted",
];

/// Incident `n` of a synthetic store: severities, titles, owners and sources in rotation,
/// updates one minute apart and creations in the opposite order.
fn incident(n: i64, base: chrono::DateTime<Utc>) -> Incident {
    let n_usize = usize::try_from(n).unwrap();
    let title = format!("{} #{n}", TITLES[n_usize % 3]);
    let owner = ["Kai@Contoso.com", "lee@contoso.com"][n_usize % 2];
    let severity = SEVERITIES[n_usize % 4];
    let source = [
        "microsoftSentinel",
        "microsoftDefenderForEndpoint",
        "microsoftSentinel",
    ][n_usize % 3];
    Incident {
        external_id: format!("inc-{n}"),
        status: Some(if n % 10 == 9 { "redirected" } else { "active" }.into()),
        severity: Some(severity.into()),
        title: Some(title.clone()),
        owner: Some(owner.into()),
        last_update: base + TimeDelta::minutes(n),
        created: Some(base - TimeDelta::minutes(n)),
        tenant_id: Some(TENANT.into()),
        sources: vec![source.into()],
        data: json!({"display_name": title, "severity": severity, "assigned_to": owner}),
        alerts: vec![Alert {
            external_id: format!("alert-{n}"),
            last_update: base + TimeDelta::minutes(n),
            data: json!({"service_source": source}),
        }],
    }
}

async fn lease_for(app: &TestApp, provider: &str) -> Lease {
    let scope = format!("azure-tenant:{TENANT}");
    let db = app.sync.db();
    store::adopt_scope(db, provider, &scope, &[]).await.unwrap();
    store::acquire_lease(db, &scope, "test")
        .await
        .unwrap()
        .unwrap()
}

/// Every incident a filtered, sorted list pages through, `limit` at a time.
async fn page_through(app: &TestApp, query: &str, limit: u32) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/incidents?limit={limit}&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.analyst(Method::GET, &path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        for incident in page.body["incidents"].as_array().unwrap() {
            ids.push(incident["external_id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return ids,
        }
    }
}

fn ids(mut incidents: Vec<Incident>, key: impl Fn(&Incident) -> (i64, i64)) -> Vec<String> {
    // Ties never occur on these keys except severity, where the update time breaks them.
    incidents.sort_by_key(|i| std::cmp::Reverse(key(i)));
    incidents.into_iter().map(|i| i.external_id).collect()
}

#[tokio::test]
async fn search_owner_source_and_every_sort_page_through_each_match_once_in_order() {
    let app = spawn_app_with(Options::default()).await;
    let provider = app.create_provider_id("Lists").await;
    let lease = lease_for(&app, &provider).await;
    let base = Utc::now() - TimeDelta::days(2);
    let all: Vec<Incident> = (0..60).map(|n| incident(n, base)).collect();
    for page in all.chunks(25) {
        store::commit_page(app.sync.db(), &lease, page)
            .await
            .unwrap();
    }
    let live: Vec<Incident> = all
        .iter()
        .filter(|i| i.status.as_deref() != Some("redirected"))
        .cloned()
        .collect();
    let updated = |i: &Incident| (i.last_update.timestamp(), 0);
    let rank = |i: &Incident| {
        let severity = i.severity.as_deref().unwrap();
        let rank = SEVERITIES.iter().position(|s| *s == severity).unwrap();
        (i64::try_from(rank).unwrap(), i.last_update.timestamp())
    };

    assert_eq!(page_through(&app, "", 7).await, ids(live.clone(), updated));
    assert_eq!(
        page_through(&app, "sort=created", 7).await,
        ids(live.clone(), |i| (i.created.unwrap().timestamp(), 0))
    );
    assert_eq!(
        page_through(&app, "sort=severity", 7).await,
        ids(live.clone(), rank)
    );

    // Search: any case, anywhere in the title; the wildcard characters are literal.
    let matching = |needle: &str| -> Vec<Incident> {
        live.iter()
            .filter(|i| i.title.as_deref().unwrap().to_lowercase().contains(needle))
            .cloned()
            .collect()
    };
    assert_eq!(
        page_through(&app, "search=bRUTE%20FORCE&sort=severity", 4).await,
        ids(matching("brute force"), rank)
    );
    let percent = page_through(&app, "search=100%25", 50).await;
    assert_eq!(percent, ids(matching("100%"), updated));
    assert!(!percent.is_empty() && percent.len() < live.len());
    assert!(page_through(&app, "search=_", 50).await.is_empty());

    // Owner (any case), source (walked through its own index) and provider.
    let owned: Vec<Incident> = live
        .iter()
        .filter(|i| i.owner.as_deref() == Some("Kai@Contoso.com"))
        .cloned()
        .collect();
    assert_eq!(
        page_through(&app, "owner=KAI@contoso.COM", 5).await,
        ids(owned, updated)
    );
    // An empty owner or search is no filter at all.
    assert_eq!(
        page_through(&app, "owner=&search=%20", 50).await,
        ids(live.clone(), updated)
    );
    let from_endpoint: Vec<Incident> = live
        .iter()
        .filter(|i| i.sources == ["microsoftDefenderForEndpoint"])
        .cloned()
        .collect();
    assert_eq!(
        page_through(&app, "source=microsoftDefenderForEndpoint", 3).await,
        ids(from_endpoint.clone(), updated)
    );
    assert_eq!(
        page_through(&app, "source=microsoftDefenderForEndpoint&sort=severity", 3).await,
        ids(from_endpoint, rank)
    );
    assert_eq!(
        page_through(&app, &format!("provider_id={provider}"), 50).await,
        ids(live.clone(), updated)
    );
    let unsynced = app.create_provider_id("Never synced").await;
    assert!(
        page_through(&app, &format!("provider_id={unsynced}"), 50)
            .await
            .is_empty()
    );
    // Merged incidents show only when asked for.
    assert_eq!(page_through(&app, "status=redirected", 50).await.len(), 6);

    // A cursor belongs to its sort; an over-long search is refused.
    let first = app
        .analyst(Method::GET, "/api/incidents?limit=2", None)
        .await;
    let cursor = first.body["next_cursor"].as_str().unwrap();
    assert!(first.body["total"] == 54 && first.body["total_capped"] == false);
    // …and continues the listing it came from even when `sort` names another.
    let second = app
        .analyst(
            Method::GET,
            &format!("/api/incidents?limit=2&sort=severity&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(second.status, StatusCode::OK);
    let expected = ids(live.clone(), updated);
    assert_eq!(
        second.body["incidents"][0]["external_id"],
        expected[2].as_str()
    );
    let long = app
        .analyst(
            Method::GET,
            &format!("/api/incidents?search={}", "a".repeat(201)),
            None,
        )
        .await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST);
    assert_eq!(long.body["code"], "invalid_search");
}

#[tokio::test]
async fn the_total_stops_counting_at_a_thousand() {
    let app = spawn_app_with(Options::default()).await;
    let provider = app.create_provider_id("Many").await;
    let lease = lease_for(&app, &provider).await;
    let base = Utc::now() - TimeDelta::days(30);
    let all: Vec<Incident> = (0..1_200)
        .map(|n| incident(n, base))
        .filter(|i| i.status.as_deref() == Some("active"))
        .take(1_001)
        .collect();
    for page in all.chunks(100) {
        store::commit_page(app.sync.db(), &lease, page)
            .await
            .unwrap();
    }
    let page = app
        .analyst(Method::GET, "/api/incidents?limit=1", None)
        .await;
    assert_eq!(page.body["total"], 1_000);
    assert_eq!(page.body["total_capped"], true);
    let high = app
        .analyst(Method::GET, "/api/incidents?limit=1&severity=high", None)
        .await;
    let expected = all
        .iter()
        .filter(|i| i.severity.as_deref() == Some("high"))
        .count();
    assert_eq!(high.body["total"], json!(expected));
    assert_eq!(high.body["total_capped"], false);
}

#[tokio::test]
async fn a_page_listing_an_incident_twice_keeps_its_newest_version() {
    let app = spawn_app_with(Options::default()).await;
    let provider = app.create_provider_id("Twice").await;
    let lease = lease_for(&app, &provider).await;
    let base = Utc::now() - TimeDelta::days(1);
    let older = incident(1, base);
    let mut newer = incident(1, base);
    newer.last_update += TimeDelta::minutes(5);
    newer.title = Some("Renamed".into());
    newer.data["display_name"] = json!("Renamed");
    newer.alerts[0].last_update += TimeDelta::minutes(5);
    newer.alerts[0].data["title"] = json!("newer alert");

    let counts = store::commit_page(
        app.sync.db(),
        &lease,
        &[newer.clone(), older.clone(), incident(2, base)],
    )
    .await
    .unwrap();
    assert_eq!((counts.fetched, counts.created, counts.updated), (3, 2, 0));
    // The older version again, later: stored versions never go back.
    let again = store::commit_page(app.sync.db(), &lease, &[older])
        .await
        .unwrap();
    assert_eq!((again.created, again.updated), (0, 0));

    let list = page_through(&app, "search=renamed", 10).await;
    assert_eq!(list, ["inc-1"]);
    let listed = app
        .analyst(Method::GET, "/api/incidents?search=renamed", None)
        .await;
    let id = listed.body["incidents"][0]["id"].as_str().unwrap();
    let detail: Value = app
        .analyst(Method::GET, &format!("/api/incidents/{id}"), None)
        .await
        .body;
    assert_eq!(detail["display_name"], "Renamed");
    assert_eq!(detail["alerts"][0]["title"], "newer alert");
}
