//! Client secret expiry: the optional date, the 30-day warning, health turning to error once
//! expired, and the gauge for alerting.

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{provider_body, rotated_secret, spawn_app};

const BASE: &str = "/api/admin/siem-providers";

fn body_expiring(name: &str, expires_at: &str) -> Value {
    let mut body = provider_body(name);
    body["client_secret_expires_at"] = json!(expires_at);
    body
}

#[tokio::test]
async fn secrets_expiring_within_30_days_warn_in_list_detail_and_metrics() {
    let app = spawn_app().await;
    let soon = (Utc::now() + Duration::days(10) + Duration::hours(1)).to_rfc3339();
    let later = (Utc::now() + Duration::days(60))
        .format("%Y-%m-%d")
        .to_string();
    let soon_reply = app
        .admin(Method::POST, BASE, Some(body_expiring("Soon", &soon)))
        .await;
    assert_eq!(
        soon_reply.status,
        StatusCode::CREATED,
        "{}",
        soon_reply.body
    );
    let id = soon_reply.body["id"].as_str().unwrap().to_owned();
    let warning = soon_reply.body["secret_expiry_warning"].as_str().unwrap();
    assert!(warning.contains("(in 10 days)"), "{warning}");
    assert!(warning.contains("Certificates & secrets"), "{warning}");
    assert_eq!(soon_reply.body["status"], "active");

    let later_reply = app
        .admin(Method::POST, BASE, Some(body_expiring("Later", &later)))
        .await;
    assert_eq!(later_reply.status, StatusCode::CREATED);
    assert_eq!(later_reply.body["secret_expiry_warning"], Value::Null);
    assert_eq!(
        later_reply.body["client_secret_expires_at"],
        format!("{later}T00:00:00Z")
    );

    let list = app.list().await;
    let listed: Vec<&Value> = list["providers"].as_array().unwrap().iter().collect();
    let soon_listed = listed.iter().find(|p| p["id"] == id.as_str()).unwrap();
    assert_eq!(soon_listed["secret_expiry_warning"], warning);
    let detail = app.admin(Method::GET, &format!("{BASE}/{id}"), None).await;
    assert_eq!(detail.body["secret_expiry_warning"], warning);

    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("socmate_provider_secret_expires_in_seconds")
                && l.contains(&format!("provider_id=\"{id}\""))
        })
        .unwrap_or_else(|| panic!("no expiry gauge for {id}:\n{metrics}"));
    let seconds: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        (9.0 * 86_400.0..11.0 * 86_400.0).contains(&seconds),
        "{line}"
    );
}

#[tokio::test]
async fn an_expired_secret_turns_the_provider_to_error() {
    let app = spawn_app().await;
    let id = app.create_provider_id("Expiring").await;
    let yesterday = (Utc::now() - Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let reply = app
        .admin(
            Method::PATCH,
            &format!("{BASE}/{id}"),
            Some(json!({"client_secret_expires_at": yesterday})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["status"], "error");
    assert!(
        reply.body["secret_expiry_warning"]
            .as_str()
            .unwrap()
            .contains(&format!("expired on {yesterday}"))
    );
    let list = app.list().await;
    assert_eq!(list["providers"][0]["status"], "error");
}

#[tokio::test]
async fn a_new_secret_clears_the_old_date_and_null_clears_it_explicitly() {
    let app = spawn_app().await;
    let soon = (Utc::now() + Duration::days(5)).to_rfc3339();
    let created = app
        .admin(Method::POST, BASE, Some(body_expiring("Rotating", &soon)))
        .await
        .body;
    let path = format!("{BASE}/{}", created["id"].as_str().unwrap());

    // Renaming keeps the date.
    let renamed = app
        .admin(Method::PATCH, &path, Some(json!({"name": "Renamed"})))
        .await
        .body;
    assert_eq!(
        renamed["client_secret_expires_at"],
        created["client_secret_expires_at"]
    );
    // A new secret without a date: the old date belonged to the old secret.
    let rotated = app
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"client_secret": rotated_secret()})),
        )
        .await
        .body;
    assert_eq!(rotated["client_secret_expires_at"], Value::Null);
    assert_eq!(rotated["secret_expiry_warning"], Value::Null);

    let dated = app
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"client_secret_expires_at": soon})),
        )
        .await
        .body;
    assert!(dated["secret_expiry_warning"].is_string());
    let cleared = app
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"client_secret_expires_at": null})),
        )
        .await
        .body;
    assert_eq!(cleared["client_secret_expires_at"], Value::Null);
}

#[tokio::test]
async fn an_unreadable_date_is_a_field_error() {
    let app = spawn_app().await;
    for bad in ["next tuesday", "2026-13-01", "99999-01-01", ""] {
        let reply = app
            .admin(Method::POST, BASE, Some(body_expiring("Bad date", bad)))
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(reply.body["errors"][0]["field"], "client_secret_expires_at");
        assert!(
            reply.body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("Expires column")
        );
    }
    assert_eq!(app.list().await["total"], 0);
}

#[tokio::test]
async fn the_test_endpoint_validates_the_whole_form_it_accepts() {
    let app = spawn_app().await;
    for (field, value) in [
        ("name", json!("")),
        ("client_secret_expires_at", json!("soon")),
    ] {
        let mut body = provider_body("Form");
        body[field] = value;
        let reply = app
            .admin(Method::POST, &format!("{BASE}/test"), Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert_eq!(reply.body["errors"][0]["field"], field);
    }
    // Without a name, as the seed sends it, the test runs.
    let mut body = provider_body("ignored");
    body.as_object_mut().unwrap().remove("name");
    let reply = app
        .admin(Method::POST, &format!("{BASE}/test"), Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}
