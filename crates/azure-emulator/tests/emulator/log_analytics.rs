//! Log Analytics query API: auth/404/403 cases with the fixture bodies, the empty-200 quirk,
//! `print` typed tables, canned queries, statistics and syntax errors.

use crate::common::*;
use azure_emulator::{
    CannedQuery, Endpoint, PreparedQuery, RunningEmulator, synthetic_rows_response,
};
use serde_json::{Value, json};

async fn query(
    emu: &RunningEmulator,
    ws: &str,
    bearer: Option<&str>,
    body: Value,
    prefer: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = client()
        .post(format!("{}/v1/workspaces/{ws}/query", emu.url()))
        .json(&body);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    if let Some(p) = prefer {
        req = req.header("Prefer", p);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

fn ok1() -> Value {
    json!({"query": "print ok=1", "timespan": "PT5M"})
}

#[tokio::test]
async fn auth_and_access_errors_match_fixtures() {
    let emu = start().await;
    let la = token(&emu, LA_SCOPE).await;
    let graph = token(&emu, GRAPH_SCOPE).await;

    // No Authorization header: 401 (fixture la-error-401-no-auth.json).
    let (s, _, b) = query(&emu, WS, None, ok1(), None).await;
    assert_eq!(s, 401);
    assert_eq!(
        json(&b),
        json!({"error": {"code": "AuthenticationFailed", "message": "Authentication failed. The 'Authorization' header is missing."}})
    );

    // Unknown token: 403 InvalidTokenError (fixture la-error-403-invalid-token-error.json).
    let invalid: Value = serde_json::from_str(include_str!(
        "../../fixtures/la-error-403-invalid-token-error.json"
    ))
    .unwrap();
    let (s, _, b) = query(&emu, WS, Some("not-a-token"), ok1(), None).await;
    assert_eq!((s, json(&b)), (403, invalid.clone()));

    // A Graph token (another audience): the same answer on the direct endpoint.
    let (s, _, b) = query(&emu, WS, Some(&graph), ok1(), None).await;
    assert_eq!((s, json(&b)), (403, invalid.clone()));

    // Unknown workspace: 404 (fixture la-error-404-path-not-found.json).
    let (s, _, b) = query(
        &emu,
        "11111111-2222-4333-8444-555555555555",
        Some(&la),
        ok1(),
        None,
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(
        json(&b),
        json!({"error": {"message": "The requested path does not exist", "code": "PathNotFoundError"}})
    );

    // Without Data.Read the app still queries: app-only access comes from RBAC on the workspace.
    emu.update(|c| c.tenants[0].apps[0].roles.retain(|r| r != "Data.Read"));
    let (s, _, _) = query(&emu, WS, Some(&la), ok1(), None).await;
    assert_eq!(s, 200);

    // No RBAC on the workspace: 403 InsufficientAccessError/UnauthorizedClient naming it.
    emu.update(|c| c.tenants[0].apps[0].workspaces.clear());
    let (s, _, b) = query(&emu, WS, Some(&la), ok1(), None).await;
    assert_eq!(s, 403);
    assert_eq!(
        json(&b),
        json!({"error": {
            "message": "The provided credentials have insufficient access to perform the requested operation",
            "code": "InsufficientAccessError",
            "innererror": {"code": "UnauthorizedClient", "message": format!("The service principal does not have sufficient permissions to access this resource: {WS}")}
        }})
    );

    // Expired token: 403 InvalidTokenError.
    emu.update(|c| c.tenants[0].apps[0].workspaces.push(WS.into()));
    let (s, _, _) = query(&emu, WS, Some(&la), ok1(), None).await;
    assert_eq!(s, 200);
    emu.expire_tokens();
    let (s, _, b) = query(&emu, WS, Some(&la), ok1(), None).await;
    assert_eq!((s, json(&b)), (403, invalid));

    assert_eq!(emu.request_count(Endpoint::LogAnalyticsQuery), 8);
    let statuses: Vec<u16> = emu
        .requests()
        .iter()
        .filter(|r| r.endpoint == Some(Endpoint::LogAnalyticsQuery))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![401, 403, 403, 404, 200, 403, 200, 403]);
}

#[tokio::test]
async fn missing_json_content_type_gives_empty_200() {
    let emu = start().await;
    let la = token(&emu, LA_SCOPE).await;
    let resp = client()
        .post(format!("{}/v1/workspaces/{WS}/query", emu.url()))
        .bearer_auth(&la)
        .header("content-type", "text/plain")
        .body(r#"{"query":"print ok=1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.unwrap(), "");
    let resp = client()
        .post(format!("{}/v1/workspaces/{WS}/query", emu.url()))
        .bearer_auth(&la)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.unwrap(), "");
}

#[tokio::test]
async fn print_queries_return_typed_tables() {
    let emu = start().await;
    let la = token(&emu, LA_SCOPE).await;
    let (s, h, b) = query(
        &emu,
        WS,
        Some(&la),
        json!({"query": "print a=1, b=\"x\", c=true, d=1.5", "timespan": "PT5M"}),
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(h["content-type"], "application/json; charset=utf-8");
    assert_eq!(h["x-ms-request-id"].to_str().unwrap().len(), 36);
    assert_eq!(
        json(&b),
        json!({"tables": [{
            "name": "PrimaryResult",
            "columns": [
                {"name": "a", "type": "long"},
                {"name": "b", "type": "string"},
                {"name": "c", "type": "bool"},
                {"name": "d", "type": "real"}
            ],
            "rows": [[1, "x", true, 1.5]]
        }]})
    );

    let (s, _, b) = query(&emu, WS, Some(&la), json!({"query": "print 1"}), None).await;
    assert_eq!(s, 200);
    assert_eq!(
        json(&b)["tables"][0]["columns"],
        json!([{"name": "print_0", "type": "long"}])
    );

    // Prefer: include-statistics=true adds a statistics object.
    let (s, _, b) = query(
        &emu,
        WS,
        Some(&la),
        ok1(),
        Some("wait=600,include-statistics=true,include-render=true"),
    )
    .await;
    assert_eq!(s, 200);
    let b = json(&b);
    assert!(b["statistics"]["query"]["executionTime"].is_number(), "{b}");
    assert_eq!(b["tables"][0]["rows"], json!([[1]]));

    // The GET form works too.
    let (s, _, b) = get(
        &format!(
            "{}/v1/workspaces/{WS}/query?query=print%20ok%3D1&timespan=PT5M",
            emu.url()
        ),
        Some(&la),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(json(&b)["tables"][0]["columns"][0]["name"], "ok");
}

#[tokio::test]
async fn canned_queries_and_syntax_errors() {
    let emu = start().await;
    let canned = json!({"tables": [{"name": "PrimaryResult",
        "columns": [{"name": "Category", "type": "string"}, {"name": "count_", "type": "long"}],
        "rows": [["Administrative", 20839], ["Recommendation", 122]]}]});
    let c2 = canned.clone();
    emu.update(move |c| {
        c.tenants[0].workspaces[0].canned.push(CannedQuery::new(
            "AzureActivity | summarize count() by Category",
            c2,
        ));
    });
    let la = token(&emu, LA_SCOPE).await;
    let (s, _, b) = query(
        &emu,
        WS,
        Some(&la),
        json!({"query": "  AzureActivity | summarize count() by Category\n"}),
        None,
    )
    .await;
    assert_eq!((s, json(&b)), (200, canned));

    // (An unknown table is a semantic error now: see la_queries.rs.)
    for q in [
        "print a=",
        "print x=1 | take 1",
        "SecurityIncident take 10",
        "| take 1",
        "SyntheticRows | where EventID == 4624",
    ] {
        let (s, _, b) = query(&emu, WS, Some(&la), json!({"query": q}), None).await;
        assert_eq!(s, 400, "{q}");
        let b = json(&b);
        assert_eq!(
            b["error"]["message"],
            "The request had some invalid properties"
        );
        assert_eq!(b["error"]["code"], "BadArgumentError");
        assert_eq!(b["error"]["innererror"]["code"], "SyntaxError");
        assert_eq!(b["error"]["innererror"]["message"], "Syntax Error");
    }
}

/// A prepared query is answered with its bytes exactly, behind the same token check as any query.
#[tokio::test]
async fn prepared_queries_send_their_bytes_as_they_are() {
    let emu = start().await;
    let body = synthetic_rows_response(2_000);
    let prepared = body.clone();
    emu.update(move |c| {
        c.tenants[0].workspaces[0].prepared.push(PreparedQuery {
            query: "SyntheticRows | take 2000".into(),
            body: prepared.into(),
        });
    });
    let request = json!({"query": " SyntheticRows | take 2000\n"});
    let (s, _, _) = query(&emu, WS, None, request.clone(), None).await;
    assert_eq!(s, 401, "no token, no prepared body");

    let la = token(&emu, LA_SCOPE).await;
    let (s, headers, text) = query(&emu, WS, Some(&la), request, None).await;
    assert_eq!(s, 200);
    assert_eq!(text.as_bytes(), body.as_slice());
    assert_eq!(headers["content-type"], "application/json; charset=utf-8");
    assert!(headers.contains_key("x-ms-request-id"));
    assert_eq!(
        json(&text)["tables"][0]["rows"].as_array().map(Vec::len),
        Some(2_000)
    );
}
