//! Operations endpoints: Prometheus metrics.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn metrics_count_requests_by_route_outbound_calls_and_queries() {
    let app = spawn_app().await;
    let provider = app.create_provider_id("Measured").await;
    app.admin(
        Method::POST,
        &format!("/api/admin/siem-providers/{provider}/test"),
        None,
    )
    .await;
    app.analyst(
        Method::POST,
        "/api/siem/query",
        Some(json!({"query": "print ok=1"})),
    )
    .await;

    let reply = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert!(
        reply.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = reply.text().await.unwrap();
    let has = |needle: &str| text.lines().any(|l| l.contains(needle));
    // Route templates, not raw paths: ids never become label values.
    assert!(
        has(
            r#"socmate_http_requests_total{method="POST",route="/api/admin/siem-providers",status="201"}"#
        ),
        "{text}"
    );
    assert!(
        has(r#"route="/api/admin/siem-providers/{id}/test""#),
        "{text}"
    );
    // A provider id appears only as the `provider_id` of per-provider gauges (from the
    // database), never as a path in a route label.
    let labelled = format!(r#"provider_id="{provider}""#);
    assert!(
        text.lines()
            .filter(|l| l.contains(provider.as_str()))
            .all(|l| l.contains(&labelled) && !l.contains("route=")),
        "no provider id from a path in any label"
    );
    assert!(
        has(&format!("socmate_provider_health{{{labelled}}} 1")),
        "{text}"
    );
    assert!(has("socmate_health_check_latency_seconds"), "{text}");
    assert!(has("socmate_http_request_duration_seconds_bucket"));
    assert!(
        has(r#"socmate_outbound_requests_total{host="127.0.0.1",outcome="2xx"}"#),
        "{text}"
    );
    assert!(
        has(r#"socmate_queries_total{status="succeeded",error=""}"#),
        "{text}"
    );
    crate::secrets::assert_no_canary("the metrics", text.as_bytes());
}

#[tokio::test]
async fn the_request_id_reaches_azure_as_its_client_request_id() {
    let app = crate::queries::query_app(crate::helpers::Options::default()).await;
    let provider = crate::queries::provider_on(&app, "Primary", crate::helpers::WORKSPACE).await;
    let request_id = "5d1b7c8e-2f4a-4b6c-9d0e-1f2a3b4c5d6e";
    app.emulator.clear_requests();
    let reply = app
        .http
        .post(format!("{}/api/siem/query", app.base))
        .bearer_auth(&app.analyst_token)
        .header("x-request-id", request_id)
        .json(&json!({"query": "print x=1", "provider_id": provider}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(reply.headers()["x-request-id"], request_id);
    let seen = app.emulator.requests();
    assert!(!seen.is_empty());
    for request in &seen {
        assert_eq!(
            request.client_request_id.as_deref(),
            Some(request_id),
            "{} {}",
            request.method,
            request.path
        );
    }

    // A client's own non-GUID id stays ours: it is never sent to Azure.
    app.emulator.clear_requests();
    app.http
        .post(format!("{}/api/siem/query", app.base))
        .bearer_auth(&app.analyst_token)
        .header("x-request-id", "my-trace-123")
        .json(&json!({"query": "print x=1", "provider_id": provider}))
        .send()
        .await
        .unwrap();
    let seen = app.emulator.requests();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|r| r.client_request_id.is_none()));
}

#[tokio::test]
async fn bad_query_parameters_and_cursors_are_problem_json_400s() {
    let app = spawn_app().await;
    for path in [
        "/api/incidents?bogus=1",
        "/api/incidents?limit=many",
        "/api/incidents?cursor=5",
        "/api/siem/queries?cursor=%2B5",
        "/api/admin/audit-log?cursor=-1",
        "/api/investigations?cursor=",
    ] {
        let reply = app.admin(Method::GET, path, None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(
            reply.headers["content-type"], "application/problem+json",
            "{path}"
        );
        assert!(
            reply.body["code"].as_str().unwrap().starts_with("invalid_"),
            "{path}"
        );
    }
}
