//! Connection tests against the Azure emulator: each failure names its step, a stable code and
//! a hint, and the whole test stays within its time bound.

use std::time::{Duration, Instant};

use azure_emulator::{AppSecret, Endpoint, Fault, FaultKind};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    CLIENT, Options, TENANT, With, check, connection_body, secret, spawn_app, spawn_app_with,
};

const TEST: &str = "/api/admin/siem-providers/test";

async fn test_with(app: &crate::helpers::TestApp, body: Value) -> Value {
    let reply = app.admin(Method::POST, TEST, Some(body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

#[tokio::test]
async fn a_healthy_connection_passes_every_check() {
    let app = spawn_app().await;
    let result = test_with(&app, connection_body()).await;
    assert_eq!(result["status"], "healthy");
    assert_eq!(
        result["message"],
        "Connected to Sentinel workspace successfully"
    );
    for name in ["token", "log_analytics", "incidents", "alerts"] {
        assert_eq!(check(&result, name)["status"], "passed", "{name}: {result}");
    }
    // Two tokens (Log Analytics and Graph), the probe query and the count of incidents Graph
    // may miss, two Graph reads.
    assert_eq!(app.emulator.request_count(Endpoint::Token), 2);
    assert_eq!(app.emulator.request_count(Endpoint::LogAnalyticsQuery), 2);
    assert_eq!(app.emulator.request_count(Endpoint::GraphIncidents), 1);
    assert_eq!(app.emulator.request_count(Endpoint::GraphAlerts), 1);
}

#[tokio::test]
async fn each_entra_id_failure_maps_to_its_code() {
    let app = spawn_app().await;
    app.emulator.update(|c| {
        c.tenants[0].apps.push({
            let mut expired =
                azure_emulator::App::new("b1a3c5d7-0000-4000-8000-00000000e001", "unused");
            expired.secrets = vec![AppSecret::expired("expired-secret-value-0001")];
            expired
        })
    });
    let cases = [
        (
            json!({"tenant_id": "00000000-0000-4000-8000-000000000000"}),
            "tenant_not_found",
        ),
        (
            json!({"tenant_id": "nosuchtenant.onmicrosoft.com"}),
            "tenant_not_found",
        ),
        (
            json!({"client_id": "00000000-0000-4000-8000-0000000000c1"}),
            "client_not_found",
        ),
        (
            json!({"client_secret": "wrong-secret-value"}),
            "invalid_client_secret",
        ),
        (
            json!({"client_id": "b1a3c5d7-0000-4000-8000-00000000e001", "client_secret": "expired-secret-value-0001"}),
            "client_secret_expired",
        ),
    ];
    for (overrides, code) in cases {
        let mut body = connection_body();
        for (k, v) in overrides.as_object().unwrap() {
            body[k] = v.clone();
        }
        let result = test_with(&app, body).await;
        assert_eq!(result["status"], "error");
        assert_eq!(
            result["message"],
            "Connection test failed. Check server logs for details."
        );
        let token = check(&result, "token");
        assert_eq!(token["status"], "failed");
        assert_eq!(token["code"], code, "{result}");
        assert!(!token["hint"].as_str().unwrap().is_empty());
        for later in ["log_analytics", "incidents", "alerts"] {
            assert_eq!(check(&result, later)["status"], "skipped");
        }
    }
    let body = test_with(&app, {
        let mut b = connection_body();
        b["client_secret"] = json!("wrong-secret-value");
        b
    })
    .await;
    assert!(
        check(&body, "token")["hint"]
            .as_str()
            .unwrap()
            .contains("not its Secret ID")
    );
}

#[tokio::test]
async fn missing_permissions_name_the_role_to_grant() {
    let app = spawn_app().await;
    app.emulator
        .update(|c| c.tenants[0].apps[0].roles = vec!["Data.Read".into()]);
    let result = test_with(&app, connection_body()).await;
    assert_eq!(result["status"], "error");
    assert_eq!(check(&result, "token")["status"], "passed");
    assert_eq!(check(&result, "log_analytics")["status"], "passed");
    let incidents = check(&result, "incidents");
    assert_eq!(incidents["code"], "missing_permission");
    assert!(
        incidents["hint"]
            .as_str()
            .unwrap()
            .contains("SecurityIncident.Read.All")
    );
    let alerts = check(&result, "alerts");
    assert_eq!(alerts["code"], "missing_permission");
    assert!(
        alerts["hint"]
            .as_str()
            .unwrap()
            .contains("SecurityAlert.Read.All")
    );

    // App-only access to the workspace is Azure RBAC, not an API permission: without Data.Read
    // the query still runs; without a reader role on the workspace the step names the role.
    app.emulator.update(|c| {
        c.tenants[0].apps[0].roles = vec![
            "SecurityIncident.Read.All".into(),
            "SecurityAlert.Read.All".into(),
        ]
    });
    let result = test_with(&app, connection_body()).await;
    assert_eq!(check(&result, "log_analytics")["status"], "passed");
    app.emulator
        .update(|c| c.tenants[0].apps[0].workspaces.clear());
    let result = test_with(&app, connection_body()).await;
    assert_eq!(
        check(&result, "log_analytics")["code"],
        "log_analytics_access_denied"
    );
    assert!(
        check(&result, "log_analytics")["hint"]
            .as_str()
            .unwrap()
            .contains("Log Analytics Reader"),
        "{result}"
    );
    assert_eq!(check(&result, "incidents")["status"], "passed");
}

#[tokio::test]
async fn an_unknown_workspace_is_named() {
    let app = spawn_app().await;
    let mut body = connection_body();
    body["workspace_id"] = json!("99999999-9999-4999-8999-999999999999");
    let result = test_with(&app, body).await;
    let la = check(&result, "log_analytics");
    assert_eq!(la["code"], "workspace_not_found");
    assert!(
        la["hint"]
            .as_str()
            .unwrap()
            .contains("Properties > Workspace ID")
    );
}

#[tokio::test]
async fn a_hanging_tenant_fails_within_the_bound() {
    let budget = Duration::from_millis(1500);
    let app = spawn_app_with(Options {
        test_budget: budget,
        ..Options::default()
    })
    .await;
    app.emulator.inject(
        Fault::new(FaultKind::Hang)
            .on(Endpoint::Token)
            .for_tenant(TENANT),
    );
    let started = Instant::now();
    let result = test_with(&app, connection_body()).await;
    let took = started.elapsed();
    assert!(took < budget + Duration::from_secs(1), "took {took:?}");
    assert_eq!(result["status"], "error");
    assert_eq!(check(&result, "token")["code"], "timeout");
}

#[tokio::test]
async fn a_slow_graph_fails_only_its_own_checks() {
    let budget = Duration::from_millis(1500);
    let app = spawn_app_with(Options {
        test_budget: budget,
        ..Options::default()
    })
    .await;
    app.emulator
        .inject(Fault::new(FaultKind::Hang).on(Endpoint::GraphIncidents));
    let result = test_with(&app, connection_body()).await;
    assert_eq!(check(&result, "log_analytics")["status"], "passed");
    assert_eq!(check(&result, "alerts")["status"], "passed");
    assert_eq!(check(&result, "incidents")["code"], "timeout");
}

#[tokio::test]
async fn one_throttled_answer_is_retried_on_the_interactive_path() {
    let app = spawn_app().await;
    app.emulator.inject(
        Fault::new(FaultKind::Throttle {
            retry_after: "0.2".into(),
        })
        .on(Endpoint::LogAnalyticsQuery)
        .times(1),
    );
    let result = test_with(&app, connection_body()).await;
    assert_eq!(result["status"], "healthy", "{result}");
    // The probe twice, then the fit count.
    assert_eq!(app.emulator.request_count(Endpoint::LogAnalyticsQuery), 3);
}

#[tokio::test]
async fn persistent_upstream_failures_are_reported_not_hidden() {
    let app = spawn_app().await;
    app.emulator
        .inject(Fault::new(FaultKind::Status { status: 503 }).on(Endpoint::GraphAlerts));
    app.emulator
        .inject(Fault::new(FaultKind::Malformed).on(Endpoint::LogAnalyticsQuery));
    let result = test_with(&app, connection_body()).await;
    assert_eq!(result["status"], "error");
    assert_eq!(check(&result, "alerts")["code"], "upstream_unavailable");
    assert_eq!(
        check(&result, "log_analytics")["code"],
        "unexpected_response"
    );
    assert_eq!(check(&result, "incidents")["status"], "passed");
    // 503 is retried exactly once.
    assert_eq!(app.emulator.request_count(Endpoint::GraphAlerts), 2);
}

#[tokio::test]
async fn an_unreachable_authority_is_reported() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = spawn_app_with(Options {
        authority: Some(format!("http://{closed}")),
        ..Options::default()
    })
    .await;
    let result = test_with(&app, connection_body()).await;
    assert_eq!(check(&result, "token")["code"], "unreachable");
}

#[tokio::test]
async fn the_token_cache_makes_one_request_for_many_callers() {
    use socmate::sentinel::cloud::parse_endpoint;
    use socmate::sentinel::token::{Freshness, TokenCache, TokenRequest};
    let app = spawn_app().await;
    let cache = std::sync::Arc::new(TokenCache::default());
    let http = reqwest::Client::new();
    let authority = parse_endpoint("authority", &app.emulator.url()).unwrap();
    let secret = secrecy::SecretString::from(secret());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let request = TokenRequest {
        authority_host: &authority,
        tenant_id: TENANT,
        client_id: CLIENT,
        client_secret: &secret,
        scope: "https://api.loganalytics.io/.default",
    };
    let tokens = futures::future::join_all(
        (0..50).map(|_| cache.token(&http, &request, Freshness::Cached, deadline)),
    )
    .await;
    assert!(tokens.iter().all(Result::is_ok));
    assert_eq!(
        app.emulator.request_count(Endpoint::Token),
        1,
        "single flight"
    );

    // A rotated secret never reuses the old secret's token.
    let rotated = secrecy::SecretString::from(crate::helpers::rotated_secret());
    let request2 = TokenRequest {
        client_secret: &rotated,
        ..request
    };
    cache
        .token(&http, &request2, Freshness::Cached, deadline)
        .await
        .unwrap();
    assert_eq!(app.emulator.request_count(Endpoint::Token), 2);
    // Forgetting the app drops its tokens.
    cache.forget(TENANT, CLIENT);
    assert!(cache.is_empty());
    cache
        .token(&http, &request2, Freshness::Cached, deadline)
        .await
        .unwrap();
    assert_eq!(app.emulator.request_count(Endpoint::Token), 3);
    // A short-lived token is renewed before it expires.
    app.emulator.update(|c| c.token_lifetime_secs = 60);
    cache.forget(TENANT, CLIENT);
    cache
        .token(&http, &request2, Freshness::Cached, deadline)
        .await
        .unwrap();
    cache
        .token(&http, &request2, Freshness::Cached, deadline)
        .await
        .unwrap();
    assert_eq!(
        app.emulator.request_count(Endpoint::Token),
        5,
        "a 60 s token is inside the 5 min refresh margin"
    );
}

#[tokio::test]
async fn redirects_are_never_followed() {
    // An "authority" that redirects every request to the real token endpoint of the emulator.
    let app = spawn_app().await;
    let target = format!("{}/{TENANT}/oauth2/v2.0/token", app.emulator.url());
    let redirector = axum::Router::new().fallback(move || {
        let target = target.clone();
        async move { (StatusCode::TEMPORARY_REDIRECT, [("location", target)]) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, redirector).await });
    let app = spawn_app_with(Options {
        authority: Some(authority),
        ..Options::default()
    })
    .await;
    let result = test_with(&app, connection_body()).await;
    assert_eq!(
        check(&result, "token")["code"],
        "token_endpoint_unavailable"
    );
    assert_eq!(
        app.emulator.request_count(Endpoint::Token),
        0,
        "the secret was never re-sent elsewhere"
    );
}

#[tokio::test]
async fn a_national_cloud_asks_for_that_clouds_tokens() {
    let app = spawn_app().await;
    let mut body = crate::helpers::provider_body("Gov");
    body["cloud"] = json!("AzureUSGovernment");
    let created = app.create_provider_from(body).await;
    assert_eq!(created["cloud"], "AzureUSGovernment");
    let id = created["id"].as_str().unwrap();
    let result = app
        .admin(
            Method::POST,
            &format!("/api/admin/siem-providers/{id}/test"),
            None,
        )
        .await
        .body;
    assert_eq!(result["status"], "healthy", "{result}");
    assert_eq!(
        app.emulator.token_audiences(),
        ["https://api.loganalytics.us", "https://graph.microsoft.us"]
    );
}

/// DoD (US Government L5) is its own Graph deployment, with its own token audience.
#[tokio::test]
async fn a_dod_provider_asks_for_dod_graph_tokens() {
    let app = spawn_app().await;
    let body = connection_body().with("cloud", json!("AzureUSGovernmentDoD"));
    let result = test_with(&app, body).await;
    assert_eq!(result["status"], "healthy", "{result}");
    assert_eq!(
        app.emulator.token_audiences(),
        [
            "https://api.loganalytics.us",
            "https://dod-graph.microsoft.us"
        ]
    );
}

#[tokio::test]
async fn connection_tests_are_rate_limited_per_caller() {
    let app = spawn_app_with(Options {
        test_rate_per_minute: 3,
        ..Options::default()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let reply = app.admin(Method::POST, TEST, Some(connection_body())).await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(reply.body["code"], "rate_limited");
            let wait: u64 = reply.headers["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=20).contains(&wait), "{wait}");
        }
        statuses.push(reply.status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    // Refused tests never reached Entra ID: two tokens per test that ran.
    assert_eq!(app.emulator.request_count(Endpoint::Token), 6);
    // Saved-provider tests share the caller's budget; another admin has their own.
    let provider = app.create_provider_id("Limited").await;
    let reply = app
        .admin(
            Method::POST,
            &format!("/api/admin/siem-providers/{provider}/test"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    let keys = socmate::auth::JwtKeys::from_secret(crate::helpers::JWT_SECRET.as_bytes()).unwrap();
    let other = keys
        .issue(
            "other-admin@example.com",
            socmate::auth::Role::Admin,
            Duration::from_secs(60),
        )
        .unwrap();
    let reply = app
        .call(Method::POST, TEST, Some(&other), Some(connection_body()))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}
