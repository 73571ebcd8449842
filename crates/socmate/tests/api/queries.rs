//! Queries through providers: routing, typed values, every upstream error class, audit.

use std::time::{Duration, Instant};

use azure_emulator::{CannedQuery, Endpoint, Fault, FaultKind, Workspace};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, WORKSPACE, provider_body, spawn_app_with};

const QUERY: &str = "/api/siem/query";
pub const SECOND_WORKSPACE: &str = "d00dfeed-0000-4000-8000-0000000000aa";

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../azure-emulator/fixtures")
        .join(name);
    serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

/// An app with access to two workspaces, each answering canned queries from the real fixtures.
pub async fn query_app(options: Options) -> TestApp {
    let mut options = options;
    let tenant = &mut options.emulator.tenants[0];
    tenant.apps[0].workspaces.push(SECOND_WORKSPACE.into());
    let mut second = Workspace::new(SECOND_WORKSPACE);
    second.canned.push(CannedQuery::new(
        "AllTypes",
        fixture("la-query-response-all-types.json"),
    ));
    tenant.workspaces.push(second);
    let first = tenant
        .workspaces
        .iter_mut()
        .find(|w| w.id == WORKSPACE)
        .unwrap();
    first.canned.push(CannedQuery::new(
        "AllTypes",
        fixture("la-query-response-all-types.json"),
    ));
    first.canned.push(CannedQuery::new(
        "NanInf",
        fixture("la-query-response-nan-inf.json"),
    ));
    first.canned.push(CannedQuery::new(
        "Partial",
        fixture("la-query-response-partial-error.json"),
    ));
    spawn_app_with(options).await
}

pub async fn provider_on(app: &TestApp, name: &str, workspace: &str) -> String {
    let mut body = provider_body(name);
    body["workspace_id"] = json!(workspace);
    app.create_provider_from(body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn workspaces_queried(app: &TestApp) -> Vec<String> {
    app.emulator
        .requests()
        .into_iter()
        .filter(|r| r.endpoint == Some(Endpoint::LogAnalyticsQuery))
        .map(|r| r.path.split('/').nth(3).unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn queries_run_on_the_default_or_the_named_provider() {
    let app = query_app(Options::default()).await;
    let a = provider_on(&app, "Primary", WORKSPACE).await;
    let b = provider_on(&app, "Secondary", SECOND_WORKSPACE).await;

    let reply = app
        .analyst(
            Method::POST,
            QUERY,
            Some(json!({"query": "print ok=1", "timespan": "PT1H"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["provider_id"], a.as_str());
    assert_eq!(
        reply.body["tables"][0]["columns"],
        json!([{"name": "ok", "type": "long"}])
    );
    assert_eq!(reply.body["tables"][0]["rows"], json!([[1]]));
    assert_eq!(reply.body["partial"], false);
    assert_eq!(reply.body["error"], Value::Null);
    assert_eq!(reply.body["truncated"], false);

    let reply = app
        .analyst(
            Method::POST,
            QUERY,
            Some(json!({"query": "print ok=1", "provider_id": b})),
        )
        .await;
    assert_eq!(reply.body["provider_id"], b.as_str());
    assert_eq!(workspaces_queried(&app), [WORKSPACE, SECOND_WORKSPACE]);

    // Both queries reused one cached Log Analytics token.
    assert_eq!(app.emulator.request_count(Endpoint::Token), 1);

    // Unknown and deleted providers are 404; with no default, a clear 409.
    let reply = app
        .analyst(
            Method::POST,
            QUERY,
            Some(json!({"query": "print 1", "provider_id": "0123456789abcdef01234567"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    app.admin(
        Method::DELETE,
        &format!("/api/admin/siem-providers/{a}"),
        None,
    )
    .await;
    let reply = app
        .analyst(
            Method::POST,
            QUERY,
            Some(json!({"query": "print 1", "provider_id": a})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = app
        .analyst(Method::POST, QUERY, Some(json!({"query": "print 1"})))
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.body["code"], "no_default_provider");
}

#[tokio::test]
async fn typed_values_survive_exactly() {
    let app = query_app(Options::default()).await;
    provider_on(&app, "Primary", WORKSPACE).await;
    let raw = app
        .http
        .post(format!("{}{QUERY}", app.base))
        .bearer_auth(&app.analyst_token)
        .json(&json!({"query": "AllTypes"}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Checked on the raw text: an i64 that went through f64 would print differently.
    assert!(raw.contains("9223372036854775807"), "{raw}");
    assert!(
        raw.contains("\"79228162514264337593543950335\""),
        "decimal stays a string"
    );
    assert!(raw.contains("1.7976931348623157e+308"), "{raw}");
    let body: Value = serde_json::from_str(&raw).unwrap();
    let row = &body["tables"][0]["rows"][0];
    assert_eq!(row[0], true);
    assert_eq!(
        row[3],
        json!([{"person": "Daniel"}, {"cats": 23}, {"diagnosis": "cat problem"}]),
        "dynamic is parsed JSON"
    );
    assert_eq!(row[5], 2147483647);
    assert_eq!(row[6].as_i64(), Some(i64::MAX));
    assert_eq!(row[8], "00:00:00.0000001");

    let body = app
        .analyst(Method::POST, QUERY, Some(json!({"query": "NanInf"})))
        .await
        .body;
    assert_eq!(
        body["tables"][0]["rows"][0],
        json!(["Infinity", "-Infinity", "NaN"])
    );
}

#[tokio::test]
async fn partial_results_are_flagged_not_hidden() {
    let app = query_app(Options::default()).await;
    provider_on(&app, "Primary", WORKSPACE).await;
    let reply = app
        .analyst(Method::POST, QUERY, Some(json!({"query": "Partial"})))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["partial"], true);
    assert_eq!(reply.body["error"]["code"], "PartialError");
    assert_eq!(
        reply.body["error"]["details"][0]["innererror"]["code"],
        "-2133196797"
    );
    assert_eq!(reply.body["tables"][0]["rows"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_kql_is_a_400_with_log_analytics_own_words() {
    let app = query_app(Options::default()).await;
    provider_on(&app, "Primary", WORKSPACE).await;
    let reply = app
        .analyst(
            Method::POST,
            QUERY,
            Some(json!({"query": "this is | not ( kql"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(reply.body["code"], "query_invalid");
    assert_eq!(reply.body["upstream"]["code"], "BadArgumentError");
    assert_eq!(reply.body["upstream"]["innererror"]["code"], "SyntaxError");
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("The request had some invalid properties")
    );
    let reply = app
        .analyst(
            Method::POST,
            QUERY,
            Some(json!({"query": "Appquests | take 1"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body["upstream"]["innererror"]["innererror"]["code"],
        "SEM0100"
    );
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("Failed to resolve table or column expression named 'Appquests'"),
        "{}",
        reply.body
    );
    // Our own validation comes first.
    let reply = app
        .analyst(Method::POST, QUERY, Some(json!({"query": "  "})))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let reply = app
        .analyst(
            Method::POST,
            QUERY,
            Some(json!({"query": "print 1", "timespan": "1 day; drop"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let reply = app
        .analyst(
            Method::POST,
            QUERY,
            Some(json!({"query": "print 1", "timeout_s": 601})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn missing_permission_is_a_424_naming_it() {
    let app = query_app(Options::default()).await;
    provider_on(&app, "Primary", WORKSPACE).await;
    app.emulator
        .update(|c| c.tenants[0].apps[0].workspaces.clear());
    let reply = app
        .analyst(Method::POST, QUERY, Some(json!({"query": "print 1"})))
        .await;
    assert_eq!(reply.status, StatusCode::FAILED_DEPENDENCY);
    assert_eq!(reply.body["code"], "log_analytics_access_denied");
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("Log Analytics Reader")
    );
}

/// Log Analytics refuses a still-unexpired token (a key rollover, a revocation) with 403
/// `InvalidTokenError`: SoCMate renews it once and the query runs (docs/azure/real-behaviour.md C7).
#[tokio::test]
async fn an_invalid_token_error_is_renewed_once_and_the_query_runs() {
    let app = query_app(Options::default()).await;
    provider_on(&app, "Primary", WORKSPACE).await;
    let run = || app.analyst(Method::POST, QUERY, Some(json!({"query": "print 1"})));
    assert_eq!(run().await.status, StatusCode::OK);
    let tokens = app.emulator.request_count(Endpoint::Token);
    app.emulator.revoke_tokens();
    let reply = run().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(app.emulator.request_count(Endpoint::Token), tokens + 1);
    let statuses: Vec<u16> = app
        .emulator
        .requests()
        .iter()
        .filter(|r| r.endpoint == Some(Endpoint::LogAnalyticsQuery))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [200, 403, 200]);
}

#[tokio::test]
async fn throttling_is_retried_then_reported_with_retry_after() {
    let app = query_app(Options::default()).await;
    provider_on(&app, "Primary", WORKSPACE).await;
    app.emulator.inject(
        Fault::new(FaultKind::Throttle {
            retry_after: "0.3".into(),
        })
        .on(Endpoint::LogAnalyticsQuery)
        .times(1),
    );
    let started = Instant::now();
    let reply = app
        .analyst(Method::POST, QUERY, Some(json!({"query": "print 1"})))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "Retry-After was honoured"
    );
    assert_eq!(app.emulator.request_count(Endpoint::LogAnalyticsQuery), 2);

    app.emulator.inject(
        Fault::new(FaultKind::Throttle {
            retry_after: "2".into(),
        })
        .on(Endpoint::LogAnalyticsQuery),
    );
    let reply = app
        .analyst(
            Method::POST,
            QUERY,
            Some(json!({"query": "print 1", "timeout_s": 3})),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.body
    );
    assert_eq!(reply.body["code"], "upstream_throttled");
    assert_eq!(reply.headers["retry-after"], "2");
}

#[tokio::test]
async fn unavailable_and_unreadable_upstreams_are_502s() {
    let app = query_app(Options::default()).await;
    provider_on(&app, "Primary", WORKSPACE).await;
    app.emulator
        .inject(Fault::new(FaultKind::Status { status: 500 }).on(Endpoint::LogAnalyticsQuery));
    let reply = app
        .analyst(Method::POST, QUERY, Some(json!({"query": "print 1"})))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.body["code"], "upstream_unavailable");
    app.emulator.clear_faults();
    app.emulator
        .inject(Fault::new(FaultKind::Malformed).on(Endpoint::LogAnalyticsQuery));
    let reply = app
        .analyst(Method::POST, QUERY, Some(json!({"query": "print 1"})))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.body["code"], "upstream_unreadable");
}

#[tokio::test]
async fn a_rejected_token_is_renewed_once() {
    let app = query_app(Options::default()).await;
    provider_on(&app, "Primary", WORKSPACE).await;
    app.analyst(Method::POST, QUERY, Some(json!({"query": "print 1"})))
        .await;
    app.emulator.expire_tokens();
    let reply = app
        .analyst(Method::POST, QUERY, Some(json!({"query": "print 1"})))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(app.emulator.request_count(Endpoint::Token), 2);
}

#[tokio::test]
async fn results_are_capped_and_flagged() {
    let app = query_app(Options {
        row_cap: 10,
        ..Options::default()
    })
    .await;
    provider_on(&app, "Primary", WORKSPACE).await;
    let reply = app
        .analyst(
            Method::POST,
            QUERY,
            Some(json!({"query": "range x from 1 to 100 step 1"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["truncated"], true);
    let rows = reply.body["tables"][0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[9], json!([10]));
}

#[tokio::test]
async fn every_query_is_audited_and_analysts_see_only_their_own() {
    let app = query_app(Options::default()).await;
    let a = provider_on(&app, "Primary", WORKSPACE).await;
    app.analyst(
        Method::POST,
        QUERY,
        Some(json!({"query": "print ok=1", "timespan": "PT5M"})),
    )
    .await;
    app.analyst(Method::POST, QUERY, Some(json!({"query": "not kql ((("})))
        .await;
    app.admin(Method::POST, QUERY, Some(json!({"query": "Partial"})))
        .await;

    let all = app.admin(Method::GET, "/api/siem/queries", None).await.body;
    let entries = all["queries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["query"], "Partial", "newest first");
    assert_eq!(entries[0]["status"], "partial");
    assert_eq!(entries[0]["actor"], "admin@example.com");
    assert_eq!(entries[1]["status"], "failed");
    assert_eq!(entries[1]["error_code"], "query_invalid");
    assert_eq!(entries[2]["status"], "succeeded");
    assert_eq!(entries[2]["provider_id"], a.as_str());
    assert_eq!(entries[2]["timespan"], "PT5M");
    assert_eq!(entries[2]["row_count"], 1);
    assert_eq!(entries[2]["actor_role"], "analyst");

    let own = app
        .analyst(Method::GET, "/api/siem/queries", None)
        .await
        .body;
    assert_eq!(own["queries"].as_array().unwrap().len(), 2);
    assert!(
        own["queries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["actor"] == "analyst@example.com")
    );

    let page = app
        .admin(Method::GET, "/api/siem/queries?limit=2", None)
        .await
        .body;
    assert_eq!(page["queries"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = app
        .admin(
            Method::GET,
            &format!("/api/siem/queries?limit=2&cursor={cursor}"),
            None,
        )
        .await
        .body;
    assert_eq!(rest["queries"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_cursor"], Value::Null);
}

#[tokio::test]
async fn concurrent_queries_per_app_are_capped_below_the_log_analytics_limit() {
    let app = query_app(Options::default()).await;
    provider_on(&app, "Primary", WORKSPACE).await;
    app.emulator
        .inject(Fault::new(FaultKind::Delay { ms: 300 }).on(Endpoint::LogAnalyticsQuery));
    let calls = (0..8).map(|_| app.analyst(Method::POST, QUERY, Some(json!({"query": "print 1"}))));
    let replies = futures::future::join_all(calls).await;
    assert!(replies.iter().all(|r| r.status == StatusCode::OK));
    let peak = app.emulator.max_concurrent(Endpoint::LogAnalyticsQuery);
    assert!((2..=4).contains(&peak), "peak concurrency {peak}");
}

#[tokio::test]
async fn a_slow_query_times_out_with_504() {
    let app = query_app(Options::default()).await;
    provider_on(&app, "Primary", WORKSPACE).await;
    app.emulator
        .inject(Fault::new(FaultKind::Delay { ms: 5000 }).on(Endpoint::LogAnalyticsQuery));
    let started = Instant::now();
    let reply = app
        .analyst(
            Method::POST,
            QUERY,
            Some(json!({"query": "print 1", "timeout_s": 1})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{}", reply.body);
    assert_eq!(reply.body["code"], "query_timeout");
    assert!(started.elapsed() < Duration::from_secs(4));
    let prefer = app
        .emulator
        .requests()
        .into_iter()
        .find_map(|r| r.prefer)
        .unwrap_or_default();
    assert!(prefer.contains("wait=1"), "{prefer}");
}

#[tokio::test]
async fn accept_text_csv_gives_the_first_table_with_every_row_and_exact_values() {
    let app = query_app(Options::default()).await;
    let id = provider_on(&app, "Primary", WORKSPACE).await;
    app.set_default(&id).await;
    let csv = |query: &'static str| {
        let app = &app;
        async move {
            let reply = app
                .http
                .post(format!("{}{QUERY}", app.base))
                .bearer_auth(&app.analyst_token)
                .header("accept", "text/csv")
                .json(&json!({ "query": query }))
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), StatusCode::OK);
            assert_eq!(reply.headers()["content-type"], "text/csv; charset=utf-8");
            assert!(
                reply.headers()["content-disposition"]
                    .to_str()
                    .unwrap()
                    .starts_with("attachment; filename=\"query-")
            );
            reply.text().await.unwrap()
        }
    };
    assert_eq!(
        csv("print big=9223372036854775807, s=\"a,b\"").await,
        "big,s\r\n9223372036854775807,\"a,b\"\r\n"
    );
    let rows = csv("range x from 1 to 20000 step 1").await;
    assert_eq!(rows.lines().count(), 20_001);
    // An export is a query like any other: audited.
    let history = app.analyst(Method::GET, "/api/siem/queries", None).await;
    assert_eq!(history.body["queries"].as_array().unwrap().len(), 2);
}

/// A caller that goes away (the console's Cancel aborts its request) ends the query on the
/// server: the SIEM call is dropped, its query slot is free at once, and the audit says so.
#[tokio::test]
async fn a_cancelled_query_frees_its_slot_and_is_audited_as_cancelled() {
    let app = query_app(Options::default()).await;
    let id = provider_on(&app, "Primary", WORKSPACE).await;
    app.set_default(&id).await;
    app.emulator.inject(
        Fault::new(FaultKind::Delay { ms: 30_000 })
            .on(Endpoint::LogAnalyticsQuery)
            .times(4),
    );
    // As many queries as one app registration may run at once, each abandoned after 1 s.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    // Four: `QUERIES_PER_APP` in sentinel/query.rs.
    let abandon = (0..4).map(|_| {
        impatient
            .post(format!("{}{QUERY}", app.base))
            .bearer_auth(&app.analyst_token)
            .json(&json!({"query": "print slow=1", "timeout_s": 60}))
            .send()
    });
    for outcome in futures::future::join_all(abandon).await {
        assert!(outcome.is_err(), "the client gave up");
    }
    // Were the abandoned ones still running, this would wait for a slot for 29 s more.
    let started = Instant::now();
    let reply = app
        .analyst(Method::POST, QUERY, Some(json!({"query": "print fast=1"})))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    crate::helpers::wait_until(Duration::from_secs(5), "four cancelled rows", || async {
        let history = app
            .analyst(Method::GET, "/api/siem/queries?limit=100", None)
            .await;
        let statuses: Vec<String> = history.body["queries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["status"].as_str().unwrap().to_owned())
            .collect();
        let cancelled = statuses.iter().filter(|s| *s == "cancelled").count();
        if cancelled == 4 {
            Ok(())
        } else {
            Err(format!("{statuses:?}"))
        }
    })
    .await;
}

/// The table JSON of `SyntheticRows | take 20000` is ~6 MiB: far past the 1 MiB SoCMate answers
/// whole (`queries::service::STREAM_ABOVE_BYTES`).
const STREAMED_ROWS: usize = 20_000;

/// A large result is sent as it downloads (chunked, no length), and its audit row exists
/// before the client can have the whole answer: the tail comes only after it.
#[tokio::test]
async fn a_large_result_is_streamed_and_audited_before_its_tail() {
    let app = query_app(Options::default()).await;
    let id = provider_on(&app, "Primary", WORKSPACE).await;
    app.set_default(&id).await;
    let query = format!("SyntheticRows | take {STREAMED_ROWS}");
    let response = app
        .http
        .post(format!("{}{QUERY}", app.base))
        .bearer_auth(&app.analyst_token)
        .json(&json!({"query": query}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers().get("content-length").is_none(),
        "{:?}",
        response.headers()
    );
    let raw = response.bytes().await.unwrap();
    assert!(raw.len() > 4 * 1024 * 1024, "{} bytes", raw.len());
    let body: Value = serde_json::from_slice(&raw).unwrap();
    let rows = body["tables"][0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), STREAMED_ROWS);
    assert_eq!(rows[0][3].as_i64(), Some(i64::MAX), "exact longs");
    assert!(rows[1][9].is_object(), "dynamic decoded: {}", rows[1][9]);
    assert_eq!(body["truncated"], false);
    let history = app.analyst(Method::GET, "/api/siem/queries", None).await;
    let entry = &history.body["queries"][0];
    assert_eq!(entry["id"], body["query_id"]);
    assert_eq!(entry["status"], "succeeded");
    assert_eq!(entry["row_count"], STREAMED_ROWS);

    // A small result still comes whole, with its length.
    let small = app
        .http
        .post(format!("{}{QUERY}", app.base))
        .bearer_auth(&app.analyst_token)
        .json(&json!({"query": "SyntheticRows | take 10"}))
        .send()
        .await
        .unwrap();
    assert!(small.headers().get("content-length").is_some());
}

/// Log Analytics' connection can drop in the middle of a large answer (the emulator's
/// `BreakOff` fault, from real tenants' reports). Once SoCMate has started streaming, the
/// response is cut short — the client never holds a complete, shorter result — and the audit
/// records the failure.
#[tokio::test]
async fn a_streamed_result_that_breaks_off_is_cut_short_and_audited_as_failed() {
    let app = query_app(Options::default()).await;
    let id = provider_on(&app, "Primary", WORKSPACE).await;
    app.set_default(&id).await;
    app.emulator.inject(
        Fault::new(FaultKind::BreakOff {
            after_bytes: 3 * 1024 * 1024,
        })
        .on(Endpoint::LogAnalyticsQuery),
    );
    let response = app
        .http
        .post(format!("{}{QUERY}", app.base))
        .bearer_auth(&app.analyst_token)
        .json(&json!({"query": format!("SyntheticRows | take {STREAMED_ROWS}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "committed once streaming"
    );
    let read = response.bytes().await;
    assert!(read.is_err(), "the body must end in an error, not as JSON");
    crate::helpers::wait_until(Duration::from_secs(5), "a failed audit row", || async {
        let history = app.analyst(Method::GET, "/api/siem/queries", None).await;
        let entry = &history.body["queries"][0];
        if entry["status"] == "failed" && entry["error_code"] == "upstream_unavailable" {
            Ok(())
        } else {
            Err(entry.to_string())
        }
    })
    .await;
}

/// A caller who leaves in the middle of a streamed result stops its download and is audited
/// as `cancelled`, like one who leaves before the first byte.
#[tokio::test]
async fn a_caller_who_leaves_mid_stream_is_audited_as_cancelled() {
    let app = query_app(Options::default()).await;
    let id = provider_on(&app, "Primary", WORKSPACE).await;
    app.set_default(&id).await;
    let mut response = app
        .http
        .post(format!("{}{QUERY}", app.base))
        .bearer_auth(&app.analyst_token)
        .json(&json!({"query": "SyntheticRows | take 200000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.chunk().await.unwrap().is_some());
    drop(response);
    crate::helpers::wait_until(Duration::from_secs(10), "a cancelled audit row", || async {
        let history = app.analyst(Method::GET, "/api/siem/queries", None).await;
        let entry = &history.body["queries"][0];
        if entry["status"] == "cancelled" {
            Ok(())
        } else {
            Err(entry.to_string())
        }
    })
    .await;
}
