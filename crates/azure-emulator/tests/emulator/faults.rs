//! Fault injection: each kind, `times`, endpoint and tenant matching, injection order, and the
//! request log/counts for faulted requests.

use crate::common::*;
use azure_emulator::{Endpoint, Fault, FaultKind, Tenant};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn token_form() -> [(&'static str, &'static str); 4] {
    [
        ("client_id", CLIENT),
        ("client_secret", SECRET),
        ("scope", GRAPH_SCOPE),
        ("grant_type", "client_credentials"),
    ]
}

#[tokio::test]
async fn status_fault_with_times_then_recovers() {
    let emu = start().await;
    emu.inject(
        Fault::new(FaultKind::Status { status: 503 })
            .on(Endpoint::Token)
            .times(2),
    );
    for _ in 0..2 {
        let (s, h, b) = token_request(&emu, TENANT, &token_form()).await;
        assert_eq!(s, 503);
        assert_eq!(b["error"], "temporarily_unavailable");
        assert_eq!(b["error_codes"], json!([90033]));
        assert!(
            b["error_description"]
                .as_str()
                .unwrap()
                .starts_with("AADSTS90033: ")
        );
        assert_eq!(h["content-type"], "application/json; charset=utf-8");
    }
    let (s, _, _) = token_request(&emu, TENANT, &token_form()).await;
    assert_eq!(s, 200);
    assert!(emu.faults().is_empty(), "expired faults are removed");
    let statuses: Vec<u16> = emu.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![503, 503, 200]);
    assert_eq!(emu.request_count(Endpoint::Token), 3);
}

#[tokio::test]
async fn status_fault_uses_each_endpoints_envelope() {
    let emu = start().await;
    let la = token(&emu, LA_SCOPE).await;
    let graph = token(&emu, GRAPH_SCOPE).await;
    emu.inject(Fault::new(FaultKind::Status { status: 500 }));

    let resp = client()
        .post(format!("{}/v1/workspaces/{WS}/query", emu.url()))
        .bearer_auth(&la)
        .json(&json!({"query": "print ok=1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 500);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["error"]["code"], "InternalServerError");
    assert!(b["error"]["message"].is_string());

    let (s, h, b) = get(
        &format!("{}/v1.0/security/incidents", emu.url()),
        Some(&graph),
    )
    .await;
    assert_eq!(s, 500);
    let b = json(&b);
    assert_eq!(b["error"]["code"], "InternalServerError");
    assert_eq!(
        b["error"]["innerError"]["request-id"],
        h["request-id"].to_str().unwrap()
    );

    let (s, _, b) = token_request(&emu, TENANT, &token_form()).await;
    assert_eq!(s, 500);
    assert_eq!(b["error"], "server_error");
}

#[tokio::test]
async fn throttle_sends_retry_after_verbatim_and_graph_429_body() {
    let emu = start().await;
    let graph = token(&emu, GRAPH_SCOPE).await;
    emu.inject(
        Fault::new(FaultKind::Throttle {
            retry_after: "2.128".into(),
        })
        .on(Endpoint::GraphAlerts)
        .times(1),
    );
    let (s, h, b) = get(
        &format!("{}/v1.0/security/alerts_v2", emu.url()),
        Some(&graph),
    )
    .await;
    assert_eq!(s, 429);
    assert_eq!(h["retry-after"], "2.128");
    let b = json(&b);
    assert_eq!(b["error"]["code"], "TooManyRequests");
    assert_eq!(b["error"]["message"], "Please retry again later.");
    assert_eq!(b["error"]["innerError"]["code"], "429");
    assert_eq!(b["error"]["innerError"]["status"], "429");
    assert_eq!(b["error"]["innerError"]["message"], "Please retry after");
    // Other endpoints are not affected, and the fault is used up.
    let (s, _, _) = get(
        &format!("{}/v1.0/security/incidents", emu.url()),
        Some(&graph),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = get(
        &format!("{}/v1.0/security/alerts_v2", emu.url()),
        Some(&graph),
    )
    .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn malformed_body_is_not_json() {
    let emu = start().await;
    let graph = token(&emu, GRAPH_SCOPE).await;
    emu.inject(Fault::new(FaultKind::Malformed).times(2));
    let (s, h, b) = get(
        &format!("{}/v1.0/security/incidents", emu.url()),
        Some(&graph),
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert!(serde_json::from_str::<Value>(&b).is_err(), "{b}");
    let resp = client()
        .post(format!("{}/{TENANT}/oauth2/v2.0/token", emu.url()))
        .form(&token_form())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.json::<Value>().await.is_err());
}

#[tokio::test]
async fn delay_then_normal_answer() {
    let emu = start().await;
    emu.inject(
        Fault::new(FaultKind::Delay { ms: 300 })
            .on(Endpoint::Token)
            .times(1),
    );
    let t0 = Instant::now();
    let (s, _, b) = token_request(&emu, TENANT, &token_form()).await;
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert_eq!(s, 200);
    assert_eq!(b["token_type"], "Bearer");
}

#[tokio::test]
async fn hang_makes_client_time_out_and_shutdown_still_returns() {
    let emu = start().await;
    emu.inject(Fault::new(FaultKind::Hang).on(Endpoint::Token));
    let short = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = short
        .post(format!("{}/{TENANT}/oauth2/v2.0/token", emu.url()))
        .form(&token_form())
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let reqs = emu.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].endpoint, Some(Endpoint::Token));
    assert_eq!(
        reqs[0].status, 0,
        "hung requests are recorded with status 0"
    );
    assert_eq!(emu.request_count(Endpoint::Token), 1);

    // A request still hanging when the emulator stops is released; shutdown does not block.
    let url = format!("{}/{TENANT}/oauth2/v2.0/token", emu.url());
    let pending = tokio::spawn(async move { client().post(url).form(&token_form()).send().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    emu.shutdown().await;
    assert!(t0.elapsed() < Duration::from_secs(2));
    let released = pending.await.unwrap();
    if let Ok(resp) = released {
        assert_eq!(resp.status().as_u16(), 503);
    }
}

#[tokio::test]
async fn tenant_scoped_faults_and_injection_order() {
    let mut cfg = config();
    let other = "aaaaaaaa-0000-4000-8000-000000000002";
    let mut t2 = Tenant::new(other);
    t2.domains.push("fabrikam.onmicrosoft.com".into());
    t2.apps.push(azure_emulator::App::new(CLIENT, SECRET));
    cfg.tenants.push(t2);
    let emu = start_with(cfg).await;

    // Fault named by domain applies to token requests addressed by id, not to the other tenant.
    emu.inject(
        Fault::new(FaultKind::Status { status: 502 })
            .for_tenant(DOMAIN)
            .on(Endpoint::Token),
    );
    let (s, _, _) = token_request(&emu, TENANT, &token_form()).await;
    assert_eq!(s, 502);
    let (s, _, _) = token_request(&emu, other, &token_form()).await;
    assert_eq!(s, 200);
    emu.clear_faults();

    // Graph: the tenant comes from the bearer token. First matching fault wins.
    let graph = token(&emu, GRAPH_SCOPE).await;
    emu.inject(Fault::new(FaultKind::Status { status: 504 }).for_tenant(other));
    emu.inject(
        Fault::new(FaultKind::Status { status: 503 })
            .for_tenant(TENANT)
            .times(1),
    );
    emu.inject(Fault::new(FaultKind::Status { status: 500 }).on(Endpoint::GraphIncidents));
    let url = format!("{}/v1.0/security/incidents", emu.url());
    assert_eq!(get(&url, Some(&graph)).await.0, 503);
    assert_eq!(get(&url, Some(&graph)).await.0, 500);
    let reqs = emu.requests();
    let last = reqs.last().unwrap();
    assert_eq!(last.tenant.as_deref(), Some(TENANT));
    assert_eq!(last.endpoint, Some(Endpoint::GraphIncidents));
    assert_eq!(last.path, "/v1.0/security/incidents");
    assert_eq!(last.method, "GET");
}

#[tokio::test]
async fn counts_per_endpoint() {
    let emu = start().await;
    let la = token(&emu, LA_SCOPE).await;
    let graph = token(&emu, GRAPH_SCOPE).await;
    for _ in 0..3 {
        get(
            &format!("{}/v1.0/security/alerts_v2?$top=1", emu.url()),
            Some(&graph),
        )
        .await;
    }
    get(
        &format!("{}/v1.0/security/incidents", emu.url()),
        Some(&graph),
    )
    .await;
    client()
        .post(format!("{}/v1/workspaces/{WS}/query", emu.url()))
        .bearer_auth(&la)
        .json(&json!({"query": "print ok=1"}))
        .send()
        .await
        .unwrap();
    get(&format!("{}/nowhere", emu.url()), None).await;
    assert_eq!(emu.request_count(Endpoint::Token), 2);
    assert_eq!(emu.request_count(Endpoint::GraphAlerts), 3);
    assert_eq!(emu.request_count(Endpoint::GraphIncidents), 1);
    assert_eq!(emu.request_count(Endpoint::LogAnalyticsQuery), 1);
    let reqs = emu.requests();
    assert_eq!(reqs.len(), 8);
    assert_eq!(reqs[2].query.as_deref(), Some("$top=1"));
    assert_eq!(reqs[7].endpoint, None);
    assert_eq!(reqs[7].status, 404);
}

#[tokio::test]
async fn dropping_stops_the_server() {
    let emu = start().await;
    let url = emu.url();
    drop(emu);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = client()
        .get(format!("{url}/v1.0/security/incidents"))
        .send()
        .await;
    assert!(err.is_err(), "server still answering after drop");
}
