//! Log Analytics query emulation for SoCMate's query feature: `range`, the `SyntheticRows`
//! table (value encodings, large streamed results), semantic errors, partial results,
//! `Prefer: wait` → 504, timespan validation, request recording and concurrency observation.

use crate::common::*;
use azure_emulator::{
    CannedQuery, Endpoint, Fault, FaultKind, RunningEmulator, synthetic_rows_response,
};
use serde::Deserialize;
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// POSTs `body` to the default workspace with a fresh LA token; status and body text.
async fn la(emu: &RunningEmulator, body: Value, prefer: Option<&str>) -> (u16, String) {
    let token = token(emu, LA_SCOPE).await;
    la_with(emu, &client(), &token, body, prefer).await
}

async fn la_with(
    emu: &RunningEmulator,
    c: &reqwest::Client,
    token: &str,
    body: Value,
    prefer: Option<&str>,
) -> (u16, String) {
    let mut req = c
        .post(format!("{}/v1/workspaces/{WS}/query", emu.url()))
        .bearer_auth(token)
        .json(&body);
    if let Some(p) = prefer {
        req = req.header("Prefer", p);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

fn q(query: &str) -> Value {
    json!({"query": query, "timespan": "PT5M"})
}

fn bad_argument(inner: Value) -> Value {
    json!({"error": {"message": "The request had some invalid properties", "code": "BadArgumentError", "innererror": inner}})
}

#[tokio::test]
async fn range_returns_a_typed_long_column() {
    let emu = start().await;
    let (s, b) = la(&emu, q("range x from 1 to 5 step 2"), None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        json(&b),
        json!({"tables": [{"name": "PrimaryResult",
            "columns": [{"name": "x", "type": "long"}],
            "rows": [[1], [3], [5]]}]})
    );

    // Any identifier as the column name; negative bounds; values near i64::MAX stay exact.
    let (s, b) = la(&emu, q("range Step_2 from -2 to 0 step 1"), None).await;
    assert_eq!(s, 200);
    let b = json(&b);
    assert_eq!(b["tables"][0]["columns"][0]["name"], "Step_2");
    assert_eq!(b["tables"][0]["rows"], json!([[-2], [-1], [0]]));
    let (s, b) = la(
        &emu,
        q("range n from 9223372036854775800 to 9223372036854775807 step 3 | take 5"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(b.contains("[9223372036854775806]"), "{b}");
    assert_eq!(
        json(&b)["tables"][0]["rows"][2][0].as_i64(),
        Some(9_223_372_036_854_775_806)
    );
    let (s, b) = la(&emu, q("range x from 1 to 100 step 1 | take 2"), None).await;
    assert_eq!(
        (s, json(&b)["tables"][0]["rows"].clone()),
        (200, json!([[1], [2]]))
    );

    // The cap is 2,000,000 rows (inclusive).
    let (s, b) = la(&emu, q("range x from 1 to 2000000 step 1"), None).await;
    assert_eq!(s, 200);
    let stats = row_stats(b.as_bytes());
    assert_eq!(
        (stats.count, stats.last),
        (2_000_000, Some(vec![json!(2_000_000)]))
    );
    let (s, b) = la(&emu, q("range x from 0 to 2000000 step 1"), None).await;
    assert_eq!(s, 400);
    let b = json(&b);
    assert_eq!(b["error"]["code"], "BadArgumentError");
    assert_eq!(b["error"]["innererror"]["code"], "QueryLimitExceeded");
    let msg = b["error"]["innererror"]["message"].as_str().unwrap();
    assert!(msg.contains("2000001") && msg.contains("2000000"), "{msg}");

    // Step must be positive; malformed ranges are syntax errors.
    let (s, b) = la(&emu, q("range x from 1 to 5 step 0"), None).await;
    assert_eq!(s, 400);
    assert_eq!(json(&b)["error"]["innererror"]["code"], "SemanticError");
    for bad in [
        "range x from 1 to 5",
        "range x from 1.5 to 5 step 1",
        "range from 1 to 5 step 1",
    ] {
        let (s, b) = la(&emu, q(bad), None).await;
        assert_eq!(s, 400, "{bad}");
        assert_eq!(
            json(&b)["error"]["innererror"]["code"],
            "SyntaxError",
            "{bad}"
        );
    }
}

#[tokio::test]
async fn synthetic_rows_encode_every_type_like_log_analytics() {
    let emu = start().await;
    let (s, text) = la(&emu, q("SyntheticRows | take 12"), None).await;
    assert_eq!(s, 200, "{text}");
    // Byte for byte what the public function produces.
    assert_eq!(text.as_bytes(), synthetic_rows_response(12).as_slice());
    // The i64 extremes are written exactly (never through f64).
    assert!(text.contains(",9223372036854775807,"));
    assert!(text.contains(",-9223372036854775808,"));

    let b = json(&text);
    assert_eq!(b.as_object().unwrap().len(), 1, "only tables: {b}");
    let t = &b["tables"][0];
    assert_eq!(t["name"], "PrimaryResult");
    let types: Vec<(&str, &str)> = t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        types,
        [
            ("TimeGenerated", "datetime"),
            ("Computer", "string"),
            ("EventID", "int"),
            ("Bytes", "long"),
            ("Ratio", "real"),
            ("Success", "bool"),
            ("Id", "guid"),
            ("Duration", "timespan"),
            ("Amount", "decimal"),
            ("Details", "dynamic"),
        ]
    );
    let rows = t["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 12);
    assert_eq!(rows[0][0], "2026-11-01T00:00:00.0000000Z");
    assert_eq!(rows[11][0], "2026-11-01T00:00:11.0000000Z");
    assert_eq!(rows[0][1], "host-0042.contoso.local");
    assert_eq!(rows[5][2].as_i64(), Some(i64::from(i32::MAX)));
    assert_eq!(rows[6][2].as_i64(), Some(i64::from(i32::MIN)));
    assert_eq!(rows[0][3].as_i64(), Some(i64::MAX));
    assert_eq!(rows[1][3].as_i64(), Some(i64::MIN));
    assert_eq!(rows[0][4].as_f64(), Some(f64::MAX));
    assert_eq!(
        (&rows[2][4], &rows[3][4], &rows[4][4]),
        (&json!("NaN"), &json!("Infinity"), &json!("-Infinity"))
    );
    for r in &rows[5..] {
        assert!(r[4].as_f64().is_some_and(f64::is_finite), "{r}");
    }
    assert!(rows.iter().all(|r| r[5].is_boolean()));
    for r in rows {
        let id = r[6].as_str().unwrap();
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(id.matches('-').count(), 4, "{id}");
    }
    assert_eq!(rows[0][7], "00:00:01.5000000");
    assert!(
        rows.iter()
            .any(|r| r[7].as_str().unwrap().split_once('.').unwrap().0.len() == 1),
        "some durations have a day part"
    );
    assert_eq!(rows[0][8], "79228162514264337593543950335");
    assert!(rows.iter().all(|r| r[8].is_string()));
    // Dynamic: a JSON-encoded string, null every 10th row.
    assert_eq!(
        (rows[0][9].clone(), rows[10][9].clone()),
        (Value::Null, Value::Null)
    );
    let details: Value = serde_json::from_str(rows[7][9].as_str().unwrap()).unwrap();
    assert_eq!(details["user"], "u7");
    assert_eq!(details["tags"].as_array().map(Vec::len), Some(2));
    assert_eq!(details["note"], "said \"hi\"\nnaïve café ✓");
    let details: Value = serde_json::from_str(rows[1][9].as_str().unwrap()).unwrap();
    assert_eq!(details["process"], r"C:\Windows\System32\lsass.exe");

    // Bare table: 100 rows; take 0: none; limit works like take; statistics are appended.
    let (_, b) = la(&emu, q("SyntheticRows"), None).await;
    assert_eq!(json(&b)["tables"][0]["rows"].as_array().unwrap().len(), 100);
    let (_, b) = la(&emu, q("SyntheticRows | take 0"), None).await;
    assert_eq!(json(&b)["tables"][0]["rows"], json!([]));
    let (s, b) = la(
        &emu,
        q("SyntheticRows\n| limit 3"),
        Some("wait=600,include-statistics=true,include-render=true"),
    )
    .await;
    assert_eq!(s, 200);
    let b = json(&b);
    assert_eq!(b["tables"][0]["rows"].as_array().unwrap().len(), 3);
    assert_eq!(
        b["statistics"]["query"]["datasetStatistics"][0]["tableRowCount"],
        3
    );
    assert_eq!(b["render"], json!({}));

    // A streamed (large) response is byte-identical to the in-memory one.
    let (s, text) = la(&emu, q("SyntheticRows | take 20000"), None).await;
    assert_eq!(s, 200);
    assert!(text.as_bytes() == synthetic_rows_response(20_000).as_slice());
}

/// Row count and last row of a query response, parsed without keeping all rows in memory.
struct RowStats {
    count: usize,
    last: Option<Vec<Value>>,
}

impl<'de> Deserialize<'de> for RowStats {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Rows;
        impl<'de> Visitor<'de> for Rows {
            type Value = RowStats;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of rows")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RowStats, A::Error> {
                let mut stats = RowStats {
                    count: 0,
                    last: None,
                };
                while let Some(row) = seq.next_element::<Vec<Value>>()? {
                    stats.count += 1;
                    stats.last = Some(row);
                }
                Ok(stats)
            }
        }
        d.deserialize_seq(Rows)
    }
}

fn row_stats(body: &[u8]) -> RowStats {
    #[derive(Deserialize)]
    struct Response {
        tables: Vec<Table>,
    }
    #[derive(Deserialize)]
    struct Table {
        rows: RowStats,
    }
    let mut r: Response = serde_json::from_slice(body).unwrap();
    assert_eq!(r.tables.len(), 1);
    r.tables.remove(0).rows
}

#[tokio::test]
async fn large_synthetic_result_is_streamed_and_parses() {
    const ROWS: usize = 500_000;
    let emu = start().await;
    let token = token(&emu, LA_SCOPE).await;
    let patient = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let t0 = Instant::now();
    let resp = patient
        .post(format!("{}/v1/workspaces/{WS}/query", emu.url()))
        .bearer_auth(&token)
        .json(&q(&format!("SyntheticRows | take {ROWS}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let body = resp.bytes().await.unwrap();
    let fetched = t0.elapsed();
    assert!(body.len() < 250 * 1024 * 1024, "{} bytes", body.len());
    assert!(body.len() > ROWS * 250, "{} bytes", body.len());
    let stats = row_stats(&body);
    assert_eq!(stats.count, ROWS);
    let last = stats.last.unwrap();
    assert_eq!(last.len(), 10);
    // Row 499999 is 499999 s after the first: 2026-11-06T18:53:19.
    assert_eq!(last[0], "2026-11-06T18:53:19.0000000Z");
    eprintln!(
        "{ROWS} rows: {} bytes ({} per row), fetched in {fetched:?}, parsed by {:?}",
        body.len(),
        body.len() / ROWS,
        t0.elapsed()
    );
}

#[tokio::test]
async fn unknown_table_is_a_semantic_error() {
    let emu = start().await;
    let (s, b) = la(&emu, q("Appquests | take 10"), None).await;
    assert_eq!(s, 400);
    // Exactly fixtures/la-error-400-semantic-reconstructed.json.
    assert_eq!(
        json(&b),
        json!({"error": {
            "message": "The request had some invalid properties",
            "code": "BadArgumentError",
            "innererror": {
                "code": "SemanticError",
                "message": "A semantic error occurred.",
                "innererror": {
                    "code": "SEM0100",
                    "message": "'take' operator: Failed to resolve table or column expression named 'Appquests'"
                }
            }
        }})
    );
    for (query, message) in [
        (
            "SecurityIncident\n| where TimeGenerated > ago(1d)",
            "'where' operator: Failed to resolve table or column expression named 'SecurityIncident'",
        ),
        (
            "Heartbeat",
            "'take' operator: Failed to resolve table or column expression named 'Heartbeat'",
        ),
        (
            "syntheticrows | summarize count()",
            "'summarize' operator: Failed to resolve table or column expression named 'syntheticrows'",
        ),
    ] {
        let (s, b) = la(&emu, q(query), None).await;
        assert_eq!(s, 400, "{query}");
        assert_eq!(
            json(&b)["error"]["innererror"]["innererror"]["message"],
            message
        );
    }
}

#[tokio::test]
async fn partial_pseudo_operator_adds_the_partial_error() {
    let emu = start().await;
    let partial_error = json!({
        "code": "PartialError",
        "message": "There were some errors when processing your query.",
        "details": [{
            "code": "EngineError",
            "message": "Something went wrong processing your query on the server.",
            "innererror": {
                "code": "-2133196797",
                "message": "The results of this query exceed the set limit of 1 records.",
                "severity": 2,
                "severityName": "Error"
            }
        }]
    });
    let (s, b) = la(&emu, q("SyntheticRows | take 3 | partial"), None).await;
    assert_eq!(s, 200);
    let b = json(&b);
    assert_eq!(b["tables"][0]["rows"].as_array().unwrap().len(), 3);
    assert_eq!(b["error"], partial_error);

    let (s, b) = la(&emu, q("SyntheticRows | take 2 | where Partial"), None).await;
    assert_eq!(s, 200);
    assert_eq!(json(&b)["error"], partial_error);

    let (s, b) = la(&emu, q("print ok=1 | partial"), None).await;
    assert_eq!(s, 200);
    let b = json(&b);
    assert_eq!(
        (b["tables"][0]["rows"].clone(), b["error"].clone()),
        (json!([[1]]), partial_error.clone())
    );

    emu.update(|c| {
        c.tenants[0].workspaces[0].canned.push(CannedQuery::new(
            "SecurityIncident | take 1",
            json!({"tables": [{"name": "PrimaryResult", "columns": [{"name": "Title", "type": "string"}], "rows": [["x"]]}]}),
        ));
    });
    let (s, b) = la(&emu, q("SecurityIncident | take 1\n| partial"), None).await;
    assert_eq!(s, 200);
    let b = json(&b);
    assert_eq!(
        (b["tables"][0]["rows"].clone(), b["error"].clone()),
        (json!([["x"]]), partial_error)
    );

    // Without the pseudo-operator there is no error member.
    let (_, b) = la(&emu, q("range x from 1 to 2 step 1"), None).await;
    assert!(json(&b).get("error").is_none());
}

#[tokio::test]
async fn prefer_wait_turns_a_long_delay_into_504() {
    let emu = start().await;
    let token = token(&emu, LA_SCOPE).await;
    emu.inject(
        Fault::new(FaultKind::Delay { ms: 2000 })
            .on(Endpoint::LogAnalyticsQuery)
            .times(1),
    );
    let t0 = Instant::now();
    let (s, b) = la_with(
        &emu,
        &client(),
        &token,
        q("print ok=1"),
        Some("wait=1,include-statistics=true"),
    )
    .await;
    let took = t0.elapsed();
    assert_eq!(s, 504, "{b}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_millis(1900),
        "{took:?}"
    );
    assert_eq!(
        json(&b),
        json!({"error": {"code": "GatewayTimeout", "message": "Gateway timeout",
            "innererror": {"code": "GatewayTimeout", "message": "Unable to unzip response"}}})
    );
    let last = emu.requests().pop().unwrap();
    assert_eq!(last.status, 504);

    // A delay shorter than the wait is answered normally, after the delay.
    emu.inject(
        Fault::new(FaultKind::Delay { ms: 300 })
            .on(Endpoint::LogAnalyticsQuery)
            .times(1),
    );
    let t0 = Instant::now();
    let (s, _) = la_with(&emu, &client(), &token, q("print ok=1"), Some("wait=1")).await;
    assert_eq!(s, 200);
    assert!(t0.elapsed() >= Duration::from_millis(300));

    // Without Prefer the wait is 180 s: a 1.2 s delay is just a slow answer.
    emu.inject(
        Fault::new(FaultKind::Delay { ms: 1200 })
            .on(Endpoint::LogAnalyticsQuery)
            .times(1),
    );
    let (s, _) = la_with(&emu, &client(), &token, q("print ok=1"), None).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn timespan_is_validated() {
    let emu = start().await;
    let token = token(&emu, LA_SCOPE).await;
    let c = client();
    for ts in [
        json!("PT5M"),
        json!("P1D"),
        json!("P7D"),
        json!("PT1H30M"),
        json!("2024-01-01/2024-01-02"),
        json!("2024-01-01T00:00:00Z/2024-01-01T06:00:00Z"),
        json!("2024-01-01T00:00:00.0000000Z/PT1H"),
        Value::Null,
    ] {
        let (s, b) = la_with(
            &emu,
            &c,
            &token,
            json!({"query": "print ok=1", "timespan": ts}),
            None,
        )
        .await;
        assert_eq!(s, 200, "{ts}: {b}");
    }
    for ts in [
        json!("5 minutes"),
        json!("PT"),
        json!("P1H"),
        json!(""),
        json!("2024-01-02/2024-01-01"),
        json!(300),
    ] {
        let (s, b) = la_with(
            &emu,
            &c,
            &token,
            json!({"query": "print ok=1", "timespan": ts}),
            None,
        )
        .await;
        assert_eq!(s, 400, "{ts}");
        let b = json(&b);
        assert_eq!(b["error"]["code"], "BadArgumentError", "{ts}");
        assert_eq!(b["error"]["innererror"]["code"], "InvalidTimespan", "{ts}");
        assert!(
            b["error"]["innererror"]["message"]
                .as_str()
                .unwrap()
                .contains("timespan")
        );
    }
    let url = |ts: &str| {
        format!(
            "{}/v1/workspaces/{WS}/query?query=print%20ok%3D1&timespan={ts}",
            emu.url()
        )
    };
    let (s, _, _) = get(&url("PT1H30M"), Some(&token)).await;
    assert_eq!(s, 200);
    let (s, _, b) = get(&url("yesterday"), Some(&token)).await;
    assert_eq!(s, 400);
    assert_eq!(json(&b)["error"]["innererror"]["code"], "InvalidTimespan");
    assert_eq!(
        json(&b),
        bad_argument(json!({
            "code": "InvalidTimespan",
            "message": "The timespan 'yesterday' is not valid: expected an ISO 8601 duration (e.g. PT5M, P1D, PT1H30M) or an interval 'start/end' of ISO 8601 datetimes"
        }))
    );
}

#[tokio::test]
async fn log_records_prefer_and_query_body_but_never_the_token_body() {
    let emu = start().await;
    let token = token(&emu, LA_SCOPE).await;
    let graph = crate::common::token(&emu, GRAPH_SCOPE).await;
    let body = json!({"query": "print ok=1", "timespan": "PT5M"});
    let (s, _) = la_with(
        &emu,
        &client(),
        &token,
        body.clone(),
        Some("wait=600,include-statistics=true"),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = get(
        &format!("{}/v1.0/security/incidents", emu.url()),
        Some(&graph),
    )
    .await;
    assert_eq!(s, 200);

    let log = emu.requests();
    let q = log
        .iter()
        .find(|r| r.endpoint == Some(Endpoint::LogAnalyticsQuery))
        .unwrap();
    assert_eq!(
        q.prefer.as_deref(),
        Some("wait=600,include-statistics=true")
    );
    assert_eq!(json(q.body.as_deref().unwrap()), body);
    for r in log
        .iter()
        .filter(|r| r.endpoint != Some(Endpoint::LogAnalyticsQuery))
    {
        assert_eq!(
            (r.prefer.as_deref(), r.body.as_deref()),
            (None, None),
            "{r:?}"
        );
    }
    let tokens = log
        .iter()
        .filter(|r| r.endpoint == Some(Endpoint::Token))
        .count();
    assert_eq!(tokens, 2);
    assert!(!format!("{log:?}").contains(SECRET));

    // The new fields serialize, and records without them still deserialize.
    let v = serde_json::to_value(q).unwrap();
    assert_eq!(v["prefer"], "wait=600,include-statistics=true");
    let old: azure_emulator::RecordedRequest = serde_json::from_value(json!({
        "endpoint": "token", "method": "POST", "path": "/t/oauth2/v2.0/token",
        "query": null, "tenant": null, "status": 200
    }))
    .unwrap();
    assert_eq!((old.prefer, old.body), (None, None));
}

#[tokio::test]
async fn max_concurrent_counts_parallel_delayed_queries() {
    let emu = start().await;
    let token = token(&emu, LA_SCOPE).await;
    assert_eq!(emu.max_concurrent(Endpoint::LogAnalyticsQuery), 0);
    assert_eq!(emu.max_concurrent(Endpoint::Token), 1);

    let c = client();
    let (s, _) = la_with(&emu, &c, &token, q("print ok=1"), None).await;
    assert_eq!(s, 200);
    assert_eq!(emu.max_concurrent(Endpoint::LogAnalyticsQuery), 1);

    emu.inject(Fault::new(FaultKind::Delay { ms: 500 }).on(Endpoint::LogAnalyticsQuery));
    let t0 = Instant::now();
    let (a, b, c3) = tokio::join!(
        la_with(&emu, &c, &token, q("print a=1"), None),
        la_with(&emu, &c, &token, q("print b=2"), None),
        la_with(&emu, &c, &token, q("print c=3"), None),
    );
    assert_eq!((a.0, b.0, c3.0), (200, 200, 200));
    assert!(
        t0.elapsed() < Duration::from_millis(1400),
        "ran in parallel"
    );
    assert_eq!(emu.max_concurrent(Endpoint::LogAnalyticsQuery), 3);
    assert_eq!(emu.max_concurrent(Endpoint::GraphIncidents), 0);
    // Also visible through the control API.
    let (s, _, log) = get(&format!("{}/_emulator/requests", emu.url()), None).await;
    assert_eq!(s, 200);
    assert_eq!(
        json(&log)["max_concurrent"],
        json!({"token": 1, "log_analytics_query": 3, "graph_incidents": 0, "graph_alerts": 0})
    );

    // Sequential requests after a reset never overlap.
    emu.clear_requests();
    assert_eq!(emu.max_concurrent(Endpoint::LogAnalyticsQuery), 0);
    for _ in 0..2 {
        la_with(&emu, &c, &token, q("print ok=1"), None).await;
    }
    assert_eq!(emu.max_concurrent(Endpoint::LogAnalyticsQuery), 1);
}

#[tokio::test]
async fn oversized_query_body_is_rejected_and_not_recorded() {
    let emu = start().await;
    let big = "x".repeat(3 * 1024 * 1024);
    let (s, b) = la(&emu, json!({"query": big}), None).await;
    assert_eq!(s, 413);
    assert_eq!(
        json(&b)["error"]["innererror"]["code"],
        "RequestBodyTooLarge"
    );
    let last = emu.requests().pop().unwrap();
    assert_eq!((last.status, last.body), (413, None));
}

/// A Sentinel workspace's `SecurityIncident` table over HTTP: a row per change, the latest read
/// with `arg_max`, typed columns, dynamic columns as JSON text.
#[tokio::test]
async fn sentinel_tables_answer_the_latest_row_per_incident() {
    let estate = azure_emulator::Estate {
        tenant_id: TENANT.into(),
        client_id: CLIENT.into(),
        secret: SECRET.into(),
        onboarded_workspace: WS.into(),
        other_workspace: "c0ffee00-0000-4000-8000-0000000000b2".into(),
        incidents: 40,
        api_created: 3,
        other_incidents: 2,
        seed: 5,
        start: chrono::Utc::now() - chrono::TimeDelta::days(2),
    };
    let emu = start_with(azure_emulator::sentinel_estate(&estate)).await;
    let (s, b) = la(&emu, q("SecurityIncident | count"), None).await;
    assert_eq!(s, 200, "{b}");
    let rows = json(&b)["tables"][0]["rows"][0][0].as_u64().unwrap();
    let (s, b) = la(
        &emu,
        q("SecurityIncident | summarize arg_max(LastModifiedTime, *) by IncidentName | order by LastModifiedTime asc, IncidentNumber asc | take 500"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let table = &json(&b)["tables"][0];
    let latest = table["rows"].as_array().unwrap();
    assert!(
        latest.len() as u64 * 2 == rows,
        "{} of {rows}",
        latest.len()
    );
    let column = |name: &str| {
        table["columns"]
            .as_array()
            .unwrap()
            .iter()
            .position(|c| c["name"] == name)
            .unwrap()
    };
    assert_eq!(table["columns"][column("IncidentNumber")]["type"], "int");
    assert_eq!(table["columns"][column("AlertIds")]["type"], "dynamic");
    let alert_ids: Value =
        serde_json::from_str(latest[0][column("AlertIds")].as_str().unwrap()).unwrap();
    assert!(alert_ids.as_array().is_some_and(|a| !a.is_empty()));
    assert!(
        latest
            .iter()
            .any(|r| r[column("ProviderName")] == "Azure Sentinel")
    );

    // Where Sentinel is not enabled, the tables do not exist.
    let emu = start().await;
    let (s, _) = la(&emu, q("SecurityIncident | count"), None).await;
    assert_eq!(s, 400);
}
