//! The seed's provider-management contract, statement by statement.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    CLIENT, TENANT, WORKSPACE, With, connection_body, provider_body, rotated_secret, spawn_app,
};

const BASE: &str = "/api/admin/siem-providers";

fn is_rfc3339_utc(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok())
}

#[tokio::test]
async fn create_returns_the_seed_shape_and_the_first_provider_is_default() {
    let app = spawn_app().await;
    let p = app.create_provider("Production Sentinel").await;
    let id = p["id"].as_str().unwrap();
    assert_eq!(id.len(), 24);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(p["name"], "Production Sentinel");
    assert_eq!(p["provider_type"], "sentinel");
    assert_eq!(p["status"], "active");
    assert_eq!(p["workspace_id"], WORKSPACE);
    assert_eq!(p["tenant_id"], TENANT);
    assert_eq!(p["client_id"], CLIENT);
    assert_eq!(p["client_secret_masked"], "****6f-x");
    assert_eq!(p["is_default"], true);
    assert_eq!(p["last_health_check"], Value::Null);
    assert_eq!(p["last_health_status"], Value::Null);
    assert_eq!(p["created_by"], "admin@example.com");
    assert!(is_rfc3339_utc(&p["created_at"]), "{}", p["created_at"]);
    assert!(is_rfc3339_utc(&p["updated_at"]));
    assert!(p.get("client_secret").is_none());

    let second = app.create_provider("Staging Sentinel").await;
    assert_eq!(second["is_default"], false);
}

#[tokio::test]
async fn the_mask_shows_only_the_last_four_characters() {
    let app = spawn_app().await;
    let mut body = provider_body("Masked");
    body["client_secret"] = json!("your-client-secret");
    let reply = app.admin(Method::POST, BASE, Some(body)).await;
    assert_eq!(reply.body["client_secret_masked"], "****cret");
    let mut body = provider_body("Short");
    body["client_secret"] = json!("tiny");
    let reply = app.admin(Method::POST, BASE, Some(body)).await;
    assert_eq!(reply.body["client_secret_masked"], "****");
}

#[tokio::test]
async fn list_and_detail_show_live_providers_with_masked_secrets() {
    let app = spawn_app().await;
    let a = app.create_provider("A").await;
    let b = app.create_provider("B").await;
    let list = app.list().await;
    assert_eq!(list["total"], 2);
    let names: Vec<_> = list["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, [json!("A"), json!("B")]);
    let detail = app
        .admin(
            Method::GET,
            &format!("{BASE}/{}", b["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(detail.status, StatusCode::OK);
    assert_eq!(detail.body, b);
    assert_eq!(list["providers"][0], a);
    assert_eq!(detail.headers["cache-control"], "no-store");
}

#[tokio::test]
async fn setting_a_default_unsets_the_previous_one() {
    let app = spawn_app().await;
    let a = app.create_provider("Production Sentinel").await;
    let b = app.create_provider("Europe Sentinel").await;
    let reply = app
        .admin(
            Method::PUT,
            &format!("{BASE}/{}/default", b["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({"message": "'Europe Sentinel' set as default provider"})
    );
    let list = app.list().await;
    let defaults: Vec<_> = list["providers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["is_default"] == true)
        .collect();
    assert_eq!(defaults.len(), 1);
    assert_eq!(defaults[0]["id"], b["id"]);
    // Setting it again is harmless.
    let again = app
        .admin(
            Method::PUT,
            &format!("{BASE}/{}/default", b["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    let _ = a;
}

#[tokio::test]
async fn deleted_providers_are_inactive_gone_and_refused() {
    let app = spawn_app().await;
    let a = app.create_provider("Production Sentinel").await;
    let b = app.create_provider("Other").await;
    let id = a["id"].as_str().unwrap();
    let reply = app
        .admin(Method::DELETE, &format!("{BASE}/{id}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .contains("was the default"),
        "{}",
        reply.body
    );

    let list = app.list().await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["providers"][0]["id"], b["id"]);
    // The default was deleted: none is left until an admin picks one.
    assert_eq!(list["providers"][0]["is_default"], false);

    for (method, path, body) in [
        (Method::GET, format!("{BASE}/{id}"), None),
        (Method::POST, format!("{BASE}/{id}/test"), None),
        (Method::PUT, format!("{BASE}/{id}/default"), None),
        (
            Method::PATCH,
            format!("{BASE}/{id}"),
            Some(json!({"name": "x"})),
        ),
        (Method::DELETE, format!("{BASE}/{id}"), None),
    ] {
        let reply = app.admin(method.clone(), &path, body).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(reply.headers["content-type"], "application/problem+json");
    }
    // The row is kept as inactive, without its secret.
    let row = crate::secrets::raw_row(&app, id).await;
    assert_eq!(row.0, "inactive");
    assert_eq!(row.1, None, "a deleted provider's secret is destroyed");
    // Its name is free again.
    app.create_provider("Production Sentinel").await;
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404() {
    let app = spawn_app().await;
    for id in [
        "0123456789abcdef01234567",
        "6507f1f77bcf86cd799439011",
        "..%2F..%2Fetc",
        "ZZZ",
    ] {
        let reply = app.admin(Method::GET, &format!("{BASE}/{id}"), None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{id}");
    }
}

#[tokio::test]
async fn live_names_are_unique() {
    let app = spawn_app().await;
    app.create_provider("Production Sentinel").await;
    let reply = app
        .admin(
            Method::POST,
            BASE,
            Some(provider_body("Production Sentinel")),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.body["code"], "name_taken");
    let other = app.create_provider("Other").await;
    let reply = app
        .admin(
            Method::PATCH,
            &format!("{BASE}/{}", other["id"].as_str().unwrap()),
            Some(json!({"name": "Production Sentinel"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn bad_bodies_get_a_problem_naming_the_field() {
    let app = spawn_app().await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"name": "x", "provider_type": "splunk"}),
            "provider_type",
        ),
        (
            provider_body("x").with("workspace_id", json!("my-workspace")),
            "workspace_id",
        ),
        (
            provider_body("x").with("client_id", json!("app")),
            "client_id",
        ),
        (
            provider_body("x").with("tenant_id", json!("../../evil")),
            "tenant_id",
        ),
        (
            provider_body("x").with("client_secret", json!("")),
            "client_secret",
        ),
        (provider_body("x").with("name", json!("")), "name"),
        (
            provider_body("x").with("name", json!("n".repeat(201))),
            "name",
        ),
        (
            provider_body("x").with("client_secret", json!("s".repeat(1025))),
            "client_secret",
        ),
        (provider_body("x").with("cloud", json!("Mars")), "cloud"),
    ];
    for (body, field) in cases {
        let reply = app.admin(Method::POST, BASE, Some(body.clone())).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let fields: Vec<_> = reply.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            fields.contains(&field.to_owned()),
            "{field} not in {fields:?}"
        );
    }
    let reply = app
        .admin(
            Method::POST,
            BASE,
            Some(json!({"name": "x", "provider_type": "sentinel", "workspace_id": "w"})),
        )
        .await;
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("Azure Portal > Log Analytics workspace > Properties > Workspace ID"),
        "{detail}"
    );
    assert!(
        detail.contains("Azure Portal > App Registrations > Your app > Application (client) ID")
    );
    // A domain tenant is fine.
    let mut body = provider_body("Domain tenant");
    body["tenant_id"] = json!("contoso.onmicrosoft.com");
    assert_eq!(
        app.admin(Method::POST, BASE, Some(body)).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn server_managed_fields_cannot_be_set() {
    let app = spawn_app().await;
    for field in [
        "is_default",
        "status",
        "id",
        "created_by",
        "last_health_status",
        "client_secret_masked",
    ] {
        let mut body = provider_body("Mass assignment");
        body[field] = json!("x");
        let reply = app.admin(Method::POST, BASE, Some(body)).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert!(
            reply.body["detail"].as_str().unwrap().contains(field),
            "{}",
            reply.body
        );
    }
    assert_eq!(app.list().await["total"], 0);
}

#[tokio::test]
async fn malformed_oversized_and_untyped_bodies_are_refused_cleanly() {
    let app = spawn_app().await;
    let url = format!("{}{BASE}", app.base);
    let send = |body: Vec<u8>, content_type: &'static str| {
        app.http
            .post(&url)
            .bearer_auth(&app.admin)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let r = send(b"{not json".to_vec(), "application/json")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = send(
        serde_json::to_vec(&provider_body("x")).unwrap(),
        "text/plain",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let mut big = provider_body("big");
    big["name"] = json!("n".repeat(70 * 1024));
    let r = send(serde_json::to_vec(&big).unwrap(), "application/json")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = send(b"[]".to_vec(), "application/json").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // A non-string secret is refused without echoing it.
    let mut body = provider_body("x");
    body["client_secret"] = json!(987654321);
    let r = send(serde_json::to_vec(&body).unwrap(), "application/json")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!r.text().await.unwrap().contains("987654321"));
}

#[tokio::test]
async fn patch_renames_repoints_and_rotates() {
    let app = spawn_app().await;
    let p = app.create_provider("Production Sentinel").await;
    let path = format!("{BASE}/{}", p["id"].as_str().unwrap());
    // A healthy check first, so that the reset is visible.
    let test = app.admin(Method::POST, &format!("{path}/test"), None).await;
    assert_eq!(test.body["status"], "healthy", "{}", test.body);

    // `null` is absent, the secret included: it is kept.
    let renamed = app
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"name": "Renamed", "client_secret": null})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK);
    assert_eq!(renamed.body["name"], "Renamed");
    assert_eq!(
        renamed.body["last_health_status"], "healthy",
        "a rename keeps health"
    );
    assert_eq!(
        renamed.body["client_secret_masked"],
        p["client_secret_masked"]
    );

    let rotated = app
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"client_secret": rotated_secret()})),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    assert_eq!(
        rotated.body["client_secret_masked"],
        format!("****{}", &rotated_secret()[rotated_secret().len() - 4..])
    );
    assert_eq!(
        rotated.body["last_health_check"],
        Value::Null,
        "new credentials are unchecked"
    );
    assert_eq!(rotated.body["last_health_status"], Value::Null);
    assert_eq!(rotated.body["status"], "active");
    // The rotated secret is the one now used (the emulator accepts only the two known ones).
    let test = app.admin(Method::POST, &format!("{path}/test"), None).await;
    assert_eq!(test.body["status"], "healthy", "{}", test.body);

    let repointed = app
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"workspace_id": "11111111-2222-4333-8444-555555555555"})),
        )
        .await;
    assert_eq!(
        repointed.body["workspace_id"],
        "11111111-2222-4333-8444-555555555555"
    );
    let test = app.admin(Method::POST, &format!("{path}/test"), None).await;
    assert_eq!(test.body["status"], "error");
    let check = test.body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "log_analytics")
        .unwrap()
        .clone();
    assert_eq!(check["code"], "workspace_not_found");

    for bad in [
        json!({"provider_type": "sentinel"}),
        json!({"is_default": true}),
        json!({"client_id": "nope"}),
    ] {
        let reply = app.admin(Method::PATCH, &path, Some(bad.clone())).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
}

#[tokio::test]
async fn testing_a_saved_provider_records_its_health() {
    let app = spawn_app().await;
    let p = app.create_provider("Production Sentinel").await;
    let path = format!("{BASE}/{}", p["id"].as_str().unwrap());
    let reply = app.admin(Method::POST, &format!("{path}/test"), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["status"], "healthy");
    assert_eq!(
        reply.body["message"],
        "Connected to Sentinel workspace successfully"
    );
    assert!(reply.body["latency_ms"].as_f64().unwrap() >= 0.0);
    let detail = app.admin(Method::GET, &path, None).await.body;
    assert_eq!(detail["status"], "active");
    assert_eq!(detail["last_health_status"], "healthy");
    assert!(is_rfc3339_utc(&detail["last_health_check"]));

    // The app loses its secret in Entra ID: the next test fails and the provider shows error.
    app.emulator
        .update(|c| c.tenants[0].apps[0].secrets.clear());
    let reply = app.admin(Method::POST, &format!("{path}/test"), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["status"], "error");
    assert_eq!(
        reply.body["message"],
        "Connection test failed. Check server logs for details."
    );
    let detail = app.admin(Method::GET, &path, None).await.body;
    assert_eq!(detail["status"], "error");
    assert_eq!(detail["last_health_status"], "error");
}

#[tokio::test]
async fn testing_credentials_saves_nothing() {
    let app = spawn_app().await;
    let reply = app
        .admin(
            Method::POST,
            &format!("{BASE}/test"),
            Some(connection_body()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["status"], "healthy", "{}", reply.body);
    // A form may send its name along.
    let reply = app
        .admin(
            Method::POST,
            &format!("{BASE}/test"),
            Some(provider_body("Draft")),
        )
        .await;
    assert_eq!(reply.body["status"], "healthy");
    assert_eq!(app.list().await["total"], 0);
}
