//! Every admin route refuses anonymous callers, bad tokens and analysts: one table over all.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use socmate::auth::{JwtKeys, Role};

use crate::helpers::{JWT_SECRET, provider_body, spawn_app};

const ID: &str = "0123456789abcdef01234567";

fn admin_routes() -> Vec<(Method, String)> {
    let base = "/api/admin/siem-providers";
    vec![
        (Method::GET, base.to_owned()),
        (Method::POST, base.to_owned()),
        (Method::POST, format!("{base}/test")),
        (Method::GET, format!("{base}/{ID}")),
        (Method::PATCH, format!("{base}/{ID}")),
        (Method::DELETE, format!("{base}/{ID}")),
        (Method::PUT, format!("{base}/{ID}/default")),
        (Method::POST, format!("{base}/{ID}/test")),
        (Method::POST, format!("{base}/{ID}/sync")),
        (Method::GET, format!("{base}/{ID}/sync")),
        // Unknown admin paths are behind the guard too.
        (Method::GET, "/api/admin/unknown".to_owned()),
    ]
}

#[tokio::test]
async fn method_swaps_never_succeed_for_non_admins() {
    let app = spawn_app().await;
    let base = "/api/admin/siem-providers";
    for (method, path) in [
        (Method::PUT, base.to_owned()),
        (Method::DELETE, base.to_owned()),
        (Method::GET, format!("{base}/test")),
        (Method::POST, format!("{base}/{ID}")),
        (Method::GET, format!("{base}/{ID}/default")),
    ] {
        for token in [None, Some(app.analyst_token.as_str())] {
            let reply = app.call(method.clone(), &path, token, None).await;
            assert!(
                [
                    StatusCode::UNAUTHORIZED,
                    StatusCode::FORBIDDEN,
                    StatusCode::METHOD_NOT_ALLOWED
                ]
                .contains(&reply.status),
                "{method} {path}: {}",
                reply.status
            );
            assert_eq!(reply.headers["content-type"], "application/problem+json");
        }
    }
}

#[tokio::test]
async fn every_admin_route_requires_an_admin_token() {
    let app = spawn_app().await;
    let keys = JwtKeys::from_secret(JWT_SECRET.as_bytes()).unwrap();
    let other_keys = JwtKeys::from_secret(b"another-deployments-secret-0123456789").unwrap();
    // Signed with this deployment's key, but with claims it never issues.
    let forge = |iat: i64, exp: i64| {
        let claims = json!({"sub": "a@x", "email": "a@x", "role": "admin", "iat": iat,
            "exp": exp, "iss": "socmate", "aud": "socmate-api"});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .unwrap()
    };
    let now = chrono::Utc::now().timestamp();
    // Outliving a real 1 s token past the 30 s leeway is too slow for a test.
    let expired = forge(now - 7200, now - 3600);
    let hundred_years = forge(now, now + 100 * 365 * 86_400);
    let forged = other_keys
        .issue("evil@example.com", Role::Admin, Duration::from_secs(600))
        .unwrap();
    let analyst = keys
        .issue(
            "analyst@example.com",
            Role::Analyst,
            Duration::from_secs(600),
        )
        .unwrap();

    let callers: [(&str, Option<&str>, StatusCode); 6] = [
        ("no token", None, StatusCode::UNAUTHORIZED),
        ("garbage token", Some("not-a-jwt"), StatusCode::UNAUTHORIZED),
        ("expired token", Some(&expired), StatusCode::UNAUTHORIZED),
        (
            "token valid for 100 years",
            Some(&hundred_years),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "token of another deployment",
            Some(&forged),
            StatusCode::UNAUTHORIZED,
        ),
        ("analyst token", Some(&analyst), StatusCode::FORBIDDEN),
    ];
    for (method, path) in admin_routes() {
        let body =
            matches!(method, Method::POST | Method::PATCH).then(|| provider_body("Auth Matrix"));
        for (who, token, expected) in &callers {
            let reply = app.call(method.clone(), &path, *token, body.clone()).await;
            assert_eq!(
                reply.status, *expected,
                "{who} on {method} {path}: {}",
                reply.body
            );
            assert_eq!(
                reply.headers["content-type"], "application/problem+json",
                "{who} on {method} {path}"
            );
            assert_eq!(reply.body["status"], expected.as_u16());
        }
        let reply = app
            .call(method.clone(), &path, Some(&app.admin), body.clone())
            .await;
        assert!(
            reply.status != StatusCode::UNAUTHORIZED && reply.status != StatusCode::FORBIDDEN,
            "admin refused on {method} {path}: {}",
            reply.status
        );
        assert!(
            !reply.status.is_server_error(),
            "{method} {path}: {}",
            reply.status
        );
    }
    // Nothing was created by the refused callers: the only provider is the admin's.
    let list = app.list().await;
    assert_eq!(list["total"], 1, "{list}");
}

#[tokio::test]
async fn expired_tokens_are_told_apart_from_invalid_ones() {
    let app = spawn_app().await;
    let reply = app
        .call(
            Method::GET,
            "/api/admin/siem-providers",
            Some("a.b.c"),
            None,
        )
        .await;
    assert_eq!(reply.body["code"], "invalid_token");
    let reply = app
        .call(Method::GET, "/api/admin/siem-providers", None, None)
        .await;
    assert_eq!(reply.body["code"], "unauthenticated");
    assert_eq!(reply.headers["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn health_endpoints_need_no_token() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz"] {
        let reply = app.call(Method::GET, path, None, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
    }
    let ready = app.call(Method::GET, "/readyz", None, None).await.body;
    assert_eq!(
        ready,
        serde_json::json!({"status": "ready", "database": "ok", "keys": "ok"})
    );
}
