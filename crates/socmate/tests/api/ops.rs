//! Operations endpoints: Prometheus metrics.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn metrics_count_requests_by_route_outbound_calls_and_queries() {
    let app = spawn_app().await;
    let provider = app.create_provider("Measured").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
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
    assert!(
        !text.contains(&provider),
        "no provider id from a path in any label"
    );
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
