//! Migrations: both stores hold the same versions, and the provider seam's migration (0007) moves
//! a database written by the schema before it — providers, secrets, incidents, alerts, sync
//! state — without loss, on SQLite and (with `SOCMATE_TEST_DATABASE_URL`) PostgreSQL.

use std::borrow::Cow;
use std::path::Path;

use azure_emulator::generate_incidents_for;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use socmate::crypto::{Cipher, MasterKey, provider_secret_binding};
use socmate::incidents::RunOutcome;
use socmate::store::{DatabaseLocation, Db};

use crate::helpers::{
    CLIENT, Options, TENANT, WORKSPACE, fresh_store, master_key_b64, secret, spawn_app_with,
};

fn versions(backend: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn both_migration_folders_hold_the_same_versions() {
    let sqlite = versions("sqlite");
    assert!(sqlite.len() >= 7, "{sqlite:?}");
    assert_eq!(
        sqlite,
        versions("postgres"),
        "every migration needs its twin"
    );
}

/// The test's store, without migrations.
async fn open(data_dir: &Path, db_url: Option<&str>) -> Db {
    let url = db_url.map(|url| SecretString::from(url.to_owned()));
    let location = match &url {
        Some(url) => DatabaseLocation::Url(url),
        None => DatabaseLocation::SqliteIn(data_dir),
    };
    Db::connect(location).await.unwrap()
}

/// Applies the migrations up to `last` only: the schema as an older SoCMate left it.
async fn migrate_up_to(db: &Db, last: i64) {
    let keep = |m: &sqlx::migrate::Migrator| {
        Cow::Owned(
            m.migrations
                .iter()
                .filter(|m| m.version <= last)
                .cloned()
                .collect(),
        )
    };
    match db {
        Db::Sqlite(pool) => {
            let mut m = sqlx::migrate!("./migrations/sqlite");
            m.migrations = keep(&m);
            m.run(pool).await.unwrap();
        }
        Db::Postgres(pool) => {
            let mut m = sqlx::migrate!("./migrations/postgres");
            m.migrations = keep(&m);
            m.run(pool).await.unwrap();
        }
    }
}

/// Runs one statement on either backend with the same binds.
macro_rules! exec {
    ($db:expr, $sql:expr $(, $bind:expr)* $(,)?) => {
        match $db {
            Db::Sqlite(pool) => { sqlx::query($sql)$(.bind($bind))*.execute(pool).await.unwrap(); }
            Db::Postgres(pool) => { sqlx::query($sql)$(.bind($bind))*.execute(pool).await.unwrap(); }
        }
    };
}

fn nanos(text: &str) -> i64 {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap()
}

#[tokio::test]
async fn the_provider_seam_migration_keeps_every_row() {
    let (data_dir, db_url) = fresh_store().await;
    let db = open(data_dir.path(), db_url.as_deref()).await;
    migrate_up_to(&db, 6).await;

    // What the previous version wrote: a Sentinel provider in the Azure columns (tenant typed as
    // its domain), its encrypted secret, and three synced incidents stored under that text.
    let id = socmate::id::ResourceId::generate().to_string();
    let typed_tenant = "contoso.onmicrosoft.com".to_owned();
    let key = MasterKey::from_base64(&SecretString::from(master_key_b64(42))).unwrap();
    let ciphertext = Cipher::new(&key)
        .encrypt_secret(&SecretString::from(secret()), provider_secret_binding(&id));
    let now = Utc::now();
    exec!(
        &db,
        "INSERT INTO siem_providers (id, name, provider_type, status, workspace_id, tenant_id, \
         client_id, cloud, client_secret_ciphertext, client_secret_masked, is_default, created_by, \
         created_at, updated_at, sync_incidents) \
         VALUES ($1, 'Production Sentinel', 'sentinel', 'active', $2, $3, $4, 'AzureUSGovernment', \
         $5, '****6f-x', TRUE, 'admin@example.com', $6, $6, TRUE)",
        &id,
        WORKSPACE,
        &typed_tenant,
        CLIENT,
        &ciphertext,
        now,
    );
    let (incidents, alerts) =
        generate_incidents_for(TENANT, 3, 7, now - chrono::TimeDelta::hours(2));
    for incident in &incidents {
        let external = incident["id"].as_str().unwrap();
        let updated = incident["lastUpdateDateTime"].as_str().unwrap();
        let incident_id = socmate::id::ResourceId::generate().to_string();
        let data = json!({"display_name": incident["displayName"], "status": "active", "last_update_at": updated});
        exec!(
            &db,
            "INSERT INTO incidents (id, tenant_id, external_id, status, severity, last_update_ns, \
             data, first_synced_at) VALUES ($1, $2, $3, 'active', 'high', $4, $5, $6)",
            &incident_id,
            &typed_tenant,
            external,
            nanos(updated),
            data.to_string(),
            now,
        );
        exec!(
            &db,
            "INSERT INTO incident_providers (incident_id, provider_id) VALUES ($1, $2)",
            &incident_id,
            &id,
        );
    }
    for alert in &alerts {
        exec!(
            &db,
            "INSERT INTO incident_alerts (tenant_id, external_id, incident_external_id, \
             last_update_ns, data) VALUES ($1, $2, $3, $4, $5)",
            &typed_tenant,
            alert["id"].as_str().unwrap(),
            alert["incidentId"].as_str().unwrap(),
            nanos(alert["lastUpdateDateTime"].as_str().unwrap()),
            json!({"title": alert["title"]}).to_string(),
        );
    }
    db.close().await;

    // The current version opens it: migration 0007 runs at start.
    let mut options = Options {
        store: Some((data_dir, db_url)),
        ..Options::default()
    };
    options.emulator.tenants[0].incidents = incidents.clone();
    options.emulator.tenants[0].alerts = alerts.clone();
    let app = spawn_app_with(options).await;

    let listed = app.list().await;
    assert_eq!(listed["total"], 1);
    let provider = &listed["providers"][0];
    for (field, value) in [
        ("id", id.as_str()),
        ("provider_type", "sentinel"),
        ("workspace_id", WORKSPACE),
        ("tenant_id", typed_tenant.as_str()),
        ("client_id", CLIENT),
        ("cloud", "AzureUSGovernment"),
        ("client_secret_masked", "****6f-x"),
    ] {
        assert_eq!(provider[field], value, "{field}: {provider}");
    }
    assert_eq!(provider["is_default"], true);
    assert_eq!(provider["sync_incidents"], true);

    // The secret still decrypts (its binding is the row id, which did not change).
    let patched = app
        .admin(
            Method::PATCH,
            &format!("/api/admin/siem-providers/{id}"),
            Some(json!({"cloud": "AzurePublic"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    let tested = app
        .admin(
            Method::POST,
            &format!("/api/admin/siem-providers/{id}/test"),
            None,
        )
        .await;
    assert_eq!(tested.body["status"], "healthy", "{}", tested.body);

    // Incidents kept their tenant, their alerts and their providers.
    let page = app
        .analyst(Method::GET, "/api/incidents?limit=10", None)
        .await;
    assert_eq!(page.body["total"], 3, "{}", page.body);
    for incident in page.body["incidents"].as_array().unwrap() {
        assert_eq!(incident["tenant_id"], typed_tenant.as_str(), "{incident}");
        let detail = app
            .analyst(
                Method::GET,
                &format!("/api/incidents/{}", incident["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert!(
            !detail.body["alerts"].as_array().unwrap().is_empty(),
            "{}",
            detail.body
        );
        assert_eq!(detail.body["provider_ids"], json!([id]));
    }

    // Syncing the same incidents again learns the tenant's id and merges what was stored under
    // the domain into it: nothing is doubled.
    let outcome = app.sync.run_once(&id).await.unwrap();
    assert_eq!(
        outcome,
        RunOutcome::Completed {
            fetched: 3,
            created: 0,
            updated: 0
        }
    );
    let page = app
        .analyst(Method::GET, "/api/incidents?limit=10", None)
        .await;
    assert_eq!(page.body["total"], 3);
    let value: &Value = &page.body["incidents"][0]["display_name"];
    assert!(value.is_string());
}

#[tokio::test]
async fn the_list_columns_migration_backfills_what_lists_search_sort_and_filter_on() {
    let (data_dir, db_url) = fresh_store().await;
    let db = open(data_dir.path(), db_url.as_deref()).await;
    migrate_up_to(&db, 10).await;
    // Two incidents as the previous version stored them: one without a creation time.
    let now = Utc::now();
    let scope = format!("azure-tenant:{TENANT}");
    for (n, title, owner, severity, created) in [
        (
            1_i64,
            "Brute force against Kai",
            "Kai@Contoso.com",
            "medium",
            None,
        ),
        (2, "Inbox rule", "lee@contoso.com", "high", Some(5_i64)),
    ] {
        let id = socmate::id::ResourceId::generate().to_string();
        let data = json!({"display_name": title, "assigned_to": owner, "severity": severity});
        exec!(
            &db,
            "INSERT INTO incidents (id, scope, tenant_id, external_id, status, severity, \
             last_update_ns, created_ns, data, first_synced_at) \
             VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, $8, $9)",
            &id,
            &scope,
            TENANT,
            format!("inc-{n}"),
            severity,
            n * 1_000,
            created,
            data.to_string(),
            now,
        );
        exec!(
            &db,
            "INSERT INTO incident_sources (incident_id, source) VALUES ($1, 'microsoftSentinel')",
            &id,
        );
    }
    db.close().await;

    let app = spawn_app_with(Options {
        store: Some((data_dir, db_url)),
        ..Options::default()
    })
    .await;
    let ids = |body: &Value| -> Vec<String> {
        body["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["external_id"].as_str().unwrap().to_owned())
            .collect()
    };
    for (query, expected) in [
        ("search=BRUTE", vec!["inc-1"]),
        ("owner=kai@contoso.com", vec!["inc-1"]),
        // Without a creation time an incident sorts by its update (1,000 ns > 5 ns).
        ("sort=created", vec!["inc-1", "inc-2"]),
        ("sort=severity", vec!["inc-2", "inc-1"]),
        ("source=microsoftSentinel", vec!["inc-2", "inc-1"]),
        (
            "source=microsoftSentinel&updated_since=1970-01-01T00:00:00.000001500Z",
            vec!["inc-2"],
        ),
    ] {
        let listed = app
            .analyst(Method::GET, &format!("/api/incidents?{query}"), None)
            .await;
        assert_eq!(listed.status, StatusCode::OK, "{query}: {}", listed.body);
        assert_eq!(ids(&listed.body), expected, "{query}");
    }
}
