//! The admin audit log: one row per admin action, written with the change it describes.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, connection_body, provider_body, rotated_secret, spawn_app};

async fn entries(app: &TestApp, query: &str) -> Vec<Value> {
    let reply = app
        .admin(Method::GET, &format!("/api/admin/audit-log{query}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["entries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn every_admin_action_leaves_exactly_one_row() {
    let app = spawn_app().await;
    let p = app.create_provider("Audited").await;
    let id = p["id"].as_str().unwrap();
    let base = format!("/api/admin/siem-providers/{id}");
    app.admin(
        Method::PATCH,
        &base,
        Some(json!({"name": "Audited 2", "client_secret": rotated_secret()})),
    )
    .await;
    app.admin(Method::PUT, &format!("{base}/default"), None)
        .await;
    app.admin(Method::POST, &format!("{base}/test"), None).await;
    app.admin(
        Method::POST,
        "/api/admin/siem-providers/test",
        Some(connection_body()),
    )
    .await;
    app.admin(Method::POST, &format!("{base}/sync"), None).await;
    app.admin(Method::DELETE, &base, None).await;

    let rows = entries(&app, "").await;
    let actions: Vec<_> = rows
        .iter()
        .rev()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "provider.create",
            "provider.update",
            "provider.set_default",
            "provider.test",
            "provider.test_credentials",
            "provider.sync",
            "provider.delete"
        ]
    );
    for row in &rows {
        assert_eq!(row["actor"], "admin@example.com");
        assert_eq!(row["actor_role"], "admin");
        assert_eq!(row["client_addr"], "127.0.0.1");
        assert!(
            row["request_id"].as_str().is_some_and(|r| r.len() >= 32),
            "{row}"
        );
        assert!(row["at"].as_str().unwrap().ends_with('Z'));
    }
    let update = rows
        .iter()
        .find(|r| r["action"] == "provider.update")
        .unwrap();
    assert_eq!(update["target_id"], id);
    assert_eq!(
        // A new secret clears the old secret's expiry date, and the audit row says so.
        update["detail"],
        "name, client_secret, client_secret_expires_at",
        "field names only, never values"
    );
    let test = rows
        .iter()
        .find(|r| r["action"] == "provider.test")
        .unwrap();
    assert_eq!(test["outcome"], "healthy");
    // No secret anywhere in the log.
    crate::secrets::assert_no_canary(
        "the audit log",
        serde_json::to_string(&rows).unwrap().as_bytes(),
    );
    // Filters.
    assert_eq!(entries(&app, "?action=provider.delete").await.len(), 1);
    assert_eq!(
        entries(&app, &format!("?target_id={id}&limit=2"))
            .await
            .len(),
        2
    );
}

#[tokio::test]
async fn refusals_and_failures_are_recorded_too() {
    let app = spawn_app().await;
    app.create_provider("Taken").await;
    let reply = app
        .admin(
            Method::POST,
            "/api/admin/siem-providers",
            Some(provider_body("Taken")),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    let reply = app
        .analyst(
            Method::DELETE,
            "/api/admin/siem-providers/0123456789abcdef01234567",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    let rows = entries(&app, "").await;
    let denied = &rows[0];
    assert_eq!(denied["action"], "access.denied");
    assert_eq!(denied["actor"], "analyst@example.com");
    assert_eq!(denied["outcome"], "denied");
    assert_eq!(
        denied["detail"],
        "DELETE /api/admin/siem-providers/0123456789abcdef01234567"
    );
    let failed = &rows[1];
    assert_eq!(failed["action"], "provider.create");
    assert_eq!(failed["outcome"], "failure");
    assert_eq!(failed["detail"], "name_taken");
    // Analysts cannot read the log.
    assert_eq!(
        app.analyst(Method::GET, "/api/admin/audit-log", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_change_whose_audit_row_cannot_be_written_does_not_happen() {
    let app = spawn_app().await;
    let rename = "ALTER TABLE audit_log RENAME TO audit_log_unavailable";
    match crate::secrets::connect(&app).await {
        crate::secrets::Conn::Sqlite(mut c) => {
            sqlx::query(rename).execute(&mut c).await.map(drop).unwrap()
        }
        crate::secrets::Conn::Pg(mut c) => {
            sqlx::query(rename).execute(&mut c).await.map(drop).unwrap()
        }
    }
    let reply = app
        .admin(
            Method::POST,
            "/api/admin/siem-providers",
            Some(provider_body("Unaudited")),
        )
        .await;
    assert!(reply.status.is_server_error(), "{}", reply.status);
    assert!(
        !reply.body.to_string().to_lowercase().contains("audit_log"),
        "no SQL in the answer: {}",
        reply.body
    );
    assert_eq!(
        app.list().await["total"],
        0,
        "the change rolled back with its audit row"
    );
}

#[tokio::test]
async fn entries_past_their_retention_are_pruned() {
    use secrecy::SecretString;
    use socmate::store::{DatabaseLocation, Db};

    let (data_dir, db_url) = crate::helpers::fresh_store().await;
    let db = match &db_url {
        Some(url) => Db::connect(DatabaseLocation::Url(&SecretString::from(url.clone()))).await,
        None => Db::connect(DatabaseLocation::SqliteIn(data_dir.path())).await,
    }
    .unwrap();
    db.migrate().await.unwrap();
    let sql = "INSERT INTO audit_log (at, actor, actor_role, action, outcome) \
               VALUES ($1, $2, 'admin', 'provider.create', 'success')";
    for (actor, age_days) in [("old@example.com", 400), ("recent@example.com", 10)] {
        let at = chrono::Utc::now() - chrono::Duration::days(age_days);
        match &db {
            Db::Sqlite(pool) => {
                sqlx::query(sql)
                    .bind(at)
                    .bind(actor)
                    .execute(pool)
                    .await
                    .unwrap();
            }
            Db::Postgres(pool) => {
                sqlx::query(sql)
                    .bind(at)
                    .bind(actor)
                    .execute(pool)
                    .await
                    .unwrap();
            }
        }
    }
    db.close().await;

    // The default retention is a year; the server prunes at start.
    let app = crate::helpers::spawn_app_with(crate::helpers::Options {
        store: Some((data_dir, db_url)),
        ..crate::helpers::Options::default()
    })
    .await;
    crate::helpers::wait_until(
        std::time::Duration::from_secs(5),
        "the old entry pruned",
        || async {
            match entries(&app, "?actor=old@example.com").await.len() {
                0 => Ok(()),
                n => Err(format!("{n} left")),
            }
        },
    )
    .await;
    assert_eq!(entries(&app, "?actor=recent@example.com").await.len(), 1);
}
