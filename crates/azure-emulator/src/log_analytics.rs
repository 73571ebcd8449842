//! Log Analytics query API (`/v1/workspaces/{workspaceId}/query`), with the real check order and
//! error envelopes (`fixtures/la-*.json`): authentication, audience, workspace, workspace RBAC,
//! then the body (JSON, `query`, `timespan`), then the query. An app-only (client credentials)
//! caller is authorized by Azure RBAC on the workspace (Log Analytics Reader, Microsoft Sentinel
//! Reader, …), evaluated at request time, not by an API permission in its token: `Data.Read` is
//! the delegated permission of the user flows (azure-monitor-docs `logs/api/access-api.md`,
//! `register-app-for-token.md`).
//!
//! Queries are answered, in this order, from canned responses (exact text after trimming), the
//! Sentinel tables `SecurityIncident` and `SecurityAlert` of a workspace with Sentinel
//! enabled (see [`crate::tables`]; rows are not filtered by `timespan`), `print` statements, `range` and the synthetic table
//! `SyntheticRows` (see [`crate::kql`] and [`crate::synthetic`]). A query starting with any other identifier gets the real semantic
//! error (`BadArgumentError` → `SemanticError` → `SEM0100` "'take' operator: Failed to resolve
//! table or column expression named 'X'"); anything else gets a `SyntaxError`.
//!
//! **Partial results**: a query ending with the pseudo-operator `| partial` (or
//! `| where Partial`) is answered as the rest of the query, plus the top-level `error` object of
//! `la-query-response-partial-error.json` (`PartialError` → `EngineError` → `-2133196797`),
//! still with status 200. Works with canned queries, `print`, `range` and `SyntheticRows`, e.g.
//! `SyntheticRows | take 10 | partial`.
//!
//! **`Prefer`**: `include-statistics=true` adds `statistics`, `include-render=true` adds
//! `render`, and `wait=N` (seconds, default 180, at most 600) is the server timeout: when an
//! injected `Delay` fault would make the answer take `N` seconds or more, the emulator answers
//! 504 `GatewayTimeout` after `N` seconds (docs/azure/wire-formats.md §2.6).
//!
//! **`timespan`** (body or query string): must be an ISO 8601 duration or interval (see
//! [`crate::timespan`]); otherwise 400 `BadArgumentError` → `InvalidTimespan`.

use std::sync::Arc;

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::kql::{self, Plan, QueryError};
use crate::state::{Bearer, Shared};
use crate::token::LOG_ANALYTICS_AUDIENCES;
use crate::{synthetic, tables, timespan, util};

const CONTENT_TYPE: &str = "application/json; charset=utf-8";
const INSUFFICIENT_ACCESS: &str =
    "The provided credentials have insufficient access to perform the requested operation";
const INVALID_PROPERTIES: &str = "The request had some invalid properties";
/// Server timeout when the request has no `Prefer: wait=N` (am-docs `timeouts.md`).
const DEFAULT_WAIT_SECS: u64 = 180;
/// Largest accepted `wait`; larger values are capped.
const MAX_WAIT_SECS: u64 = 600;

fn with_ids(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    util::set_header(h, "x-ms-request-id", &util::uuid_v4());
    util::set_header(h, "x-ms-correlation-request-id", &util::uuid_v4());
    resp
}

fn la_json(status: StatusCode, body: &Value) -> Response {
    with_ids(util::json_response(status, CONTENT_TYPE, body))
}

fn bad_argument(innererror: Value) -> Response {
    la_json(
        StatusCode::BAD_REQUEST,
        &json!({"error": {"message": INVALID_PROPERTIES, "code": "BadArgumentError", "innererror": innererror}}),
    )
}

/// Error body for an injected status fault on the query endpoint.
pub(crate) fn error_for_status(status: StatusCode) -> Response {
    let (code, message) = match status.as_u16() {
        400 => ("BadArgumentError", INVALID_PROPERTIES),
        401 => (
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        ),
        403 => ("InsufficientAccessError", INSUFFICIENT_ACCESS),
        404 => ("PathNotFoundError", "The requested path does not exist"),
        429 => (
            "ThrottledError",
            "Your request was throttled. Please retry later.",
        ),
        504 => {
            return la_json(
                status,
                &json!({"error": {"message": "Gateway timeout", "code": "GatewayTimeout", "correlationId": util::uuid_v4(),
                    "innererror": {"code": "GatewayTimeout", "message": "Unable to unzip response"}}}),
            );
        }
        n if (500..600).contains(&n) => (
            "InternalServerError",
            "An internal server error occurred. Please retry the request.",
        ),
        n if (400..500).contains(&n) => ("BadArgumentError", INVALID_PROPERTIES),
        _ => return with_ids(status.into_response()),
    };
    la_json(
        status,
        &json!({"error": {"message": message, "code": code, "correlationId": util::uuid_v4()}}),
    )
}

/// `POST /v1/workspaces/{workspaceId}/query`
pub(crate) async fn query_post(
    State(shared): State<Arc<Shared>>,
    Path(workspace): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(resp) = authorize(&shared, &workspace, &headers) {
        return resp;
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json || body.iter().all(u8::is_ascii_whitespace) {
        // Real behaviour (am-docs errors.md "Missing JSON or Content-Type"): 200 with no body.
        return with_ids(StatusCode::OK.into_response());
    }
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return bad_argument(json!({
                "code": "InvalidJsonBody",
                "message": format!("The request body is not valid JSON: {e}"),
            }));
        }
    };
    let Some(query) = parsed.get("query").and_then(Value::as_str) else {
        return bad_argument(json!({
            "code": "QueryValidationError",
            "message": "The 'query' property is required and must be a string",
        }));
    };
    match parsed.get("timespan") {
        None | Some(Value::Null) => {}
        Some(Value::String(ts)) => {
            if let Err(resp) = check_timespan(ts) {
                return resp;
            }
        }
        Some(other) => {
            return bad_argument(json!({
                "code": "InvalidTimespan",
                "message": format!("The 'timespan' property must be a string, got {other}"),
            }));
        }
    }
    run_query(&shared, &workspace, query, &headers)
}

/// `GET /v1/workspaces/{workspaceId}/query?query=...&timespan=...`
pub(crate) async fn query_get(
    State(shared): State<Arc<Shared>>,
    Path(workspace): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = authorize(&shared, &workspace, &headers) {
        return resp;
    }
    let param = |name: &str| {
        raw.as_deref().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        })
    };
    let Some(query) = param("query") else {
        return bad_argument(json!({
            "code": "QueryValidationError",
            "message": "The 'query' parameter is required",
        }));
    };
    if let Some(ts) = param("timespan")
        && let Err(resp) = check_timespan(&ts)
    {
        return resp;
    }
    run_query(&shared, &workspace, &query, &headers)
}

/// Authentication and authorization, in the order the real service applies them. The direct
/// endpoint answers an unknown, expired or wrong-audience token alike: 403 `InvalidTokenError`
/// (`fixtures/la-error-403-invalid-token-error.json`; Azure/azure-sdk-for-js#15399 got it for a
/// token of another audience). `InvalidAuthenticationToken*` are the ARM-routed endpoint's codes.
fn authorize(shared: &Shared, workspace: &str, headers: &HeaderMap) -> Result<(), Response> {
    let token = match shared.bearer(headers) {
        Bearer::Missing => {
            return Err(la_json(
                StatusCode::UNAUTHORIZED,
                &json!({"error": {"code": "AuthenticationFailed", "message": "Authentication failed. The 'Authorization' header is missing."}}),
            ));
        }
        Bearer::Unknown | Bearer::Expired(_) => return Err(invalid_token()),
        Bearer::Valid(t) => t,
    };
    if !LOG_ANALYTICS_AUDIENCES.contains(&token.audience.as_str()) {
        return Err(invalid_token());
    }
    let Some(caller) = shared.caller(token) else {
        return Err(invalid_token());
    };
    if caller.tenant().workspace(workspace).is_none() {
        return Err(la_json(
            StatusCode::NOT_FOUND,
            &json!({"error": {"message": "The requested path does not exist", "code": "PathNotFoundError"}}),
        ));
    }
    let has_rbac = caller
        .app()
        .is_some_and(|a| a.can_read_workspace(workspace));
    if !has_rbac {
        // am-docs `logs/api/errors.md`, "Client credentials to direct API".
        return Err(la_json(
            StatusCode::FORBIDDEN,
            &json!({"error": {"message": INSUFFICIENT_ACCESS, "code": "InsufficientAccessError", "innererror": {
                "code": "UnauthorizedClient",
                "message": format!("The service principal does not have sufficient permissions to access this resource: {workspace}"),
            }}}),
        ));
    }
    Ok(())
}

fn invalid_token() -> Response {
    la_json(
        StatusCode::FORBIDDEN,
        &json!({"error": {
            "message": "The provided authentication is not valid for this resource",
            "code": "InvalidTokenError",
            "innererror": {"code": "SignatureVerificationFailed", "message": "Could not validate the request"},
        }}),
    )
}

fn check_timespan(ts: &str) -> Result<(), Response> {
    timespan::validate(ts)
        .map_err(|message| bad_argument(json!({"code": "InvalidTimespan", "message": message})))
}

#[derive(Default)]
struct Prefer {
    statistics: bool,
    render: bool,
    wait: Option<u64>,
}

fn prefer(headers: &HeaderMap) -> Prefer {
    let mut p = Prefer::default();
    for v in headers.get_all("prefer") {
        let Ok(v) = v.to_str() else { continue };
        for item in v.split(',') {
            let item = item.trim().to_ascii_lowercase();
            match item.as_str() {
                "include-statistics=true" => p.statistics = true,
                "include-render=true" => p.render = true,
                _ => {
                    if let Some(n) = item
                        .strip_prefix("wait")
                        .and_then(|r| r.trim_start().strip_prefix('='))
                        .and_then(|n| n.trim().parse::<u64>().ok())
                    {
                        p.wait = Some(n);
                    }
                }
            }
        }
    }
    p
}

/// The server timeout a query request asked for with `Prefer: wait=N` (default 180 s, capped at
/// 600 s; an unparsable value counts as absent).
pub(crate) fn server_timeout(headers: &HeaderMap) -> Duration {
    let secs = prefer(headers).wait.unwrap_or(DEFAULT_WAIT_SECS);
    Duration::from_secs(secs.min(MAX_WAIT_SECS))
}

/// 413 for a query body larger than the emulator buffers.
pub(crate) fn body_too_large(limit: usize) -> Response {
    la_json(
        StatusCode::PAYLOAD_TOO_LARGE,
        &json!({"error": {"message": INVALID_PROPERTIES, "code": "BadArgumentError", "innererror": {
            "code": "RequestBodyTooLarge",
            "message": format!("azure-emulator: the request body exceeds {limit} bytes"),
        }}}),
    )
}

/// 504 sent when the query would outlast the server timeout (docs/azure/wire-formats.md §2.6).
pub(crate) fn gateway_timeout() -> Response {
    la_json(
        StatusCode::GATEWAY_TIMEOUT,
        &json!({"error": {"code": "GatewayTimeout", "message": "Gateway timeout",
            "innererror": {"code": "GatewayTimeout", "message": "Unable to unzip response"}}}),
    )
}

/// Splits a trailing `| partial` / `| where Partial` pseudo-operator off `query`.
fn strip_partial(query: &str) -> Option<&str> {
    let q = query.trim_end();
    let q = q.strip_suffix(';').unwrap_or(q).trim_end();
    let (rest, last) = q.rsplit_once('|')?;
    let words: Vec<&str> = last.split_whitespace().collect();
    matches!(words.as_slice(), ["partial"] | ["where", "Partial"]).then_some(rest.trim_end())
}

fn run_query(shared: &Shared, workspace: &str, query: &str, headers: &HeaderMap) -> Response {
    let prepared = shared.with_config(|c| {
        c.tenants
            .iter()
            .filter_map(|t| t.workspace(workspace))
            .flat_map(|w| w.prepared.iter())
            .find(|pq| pq.query.trim() == query.trim())
            .map(|pq| pq.body.clone())
    });
    if let Some(body) = prepared {
        return with_ids(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, CONTENT_TYPE)],
                Body::from(body),
            )
                .into_response(),
        );
    }
    let canned_for = |wanted: &str| {
        shared.with_config(|c| {
            c.tenants
                .iter()
                .filter_map(|t| t.workspace(workspace))
                .flat_map(|w| w.canned.iter())
                .find(|cq| cq.query.trim() == wanted)
                .map(|cq| cq.response.clone())
        })
    };
    let wanted = query.trim();
    let (wanted, partial) = match canned_for(wanted) {
        Some(v) => return value_response(v, headers, false),
        None => match strip_partial(wanted) {
            Some(rest) => (rest, true),
            None => (wanted, false),
        },
    };
    if partial && let Some(v) = canned_for(wanted) {
        return value_response(v, headers, true);
    }
    let sentinel_rows = tables::table_of(wanted).and_then(|table| {
        shared.with_config(|c| {
            c.tenants
                .iter()
                .find_map(|t| t.workspace(workspace))
                .filter(|w| w.sentinel)
                .map(|w| match table {
                    "SecurityIncident" => w.security_incidents.clone(),
                    _ => w.security_alerts.clone(),
                })
        })
    });
    if let Some(rows) = sentinel_rows {
        return match tables::evaluate(wanted, &rows, chrono::Utc::now()) {
            Ok(table) => value_response(json!({"tables": [table]}), headers, partial),
            Err(tables::TableError::Syntax { pos, token, detail }) => {
                syntax_error(pos, &token, &detail)
            }
            Err(tables::TableError::UnknownColumn { operator, name }) => semantic_error(
                "SEM0100",
                &format!(
                    "'{operator}' operator: Failed to resolve scalar expression named '{name}'"
                ),
            ),
        };
    }
    match kql::evaluate_print(wanted) {
        Ok(Some(table)) => return value_response(json!({"tables": [table]}), headers, partial),
        Ok(None) => {}
        Err(e) => return syntax_error(e.pos, &e.token, &e.detail),
    }
    match kql::plan(wanted) {
        Ok(Some(plan)) => plan_response(plan, headers, partial),
        Ok(None) => {
            let token: String = wanted
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '|')
                .collect();
            syntax_error(
                0,
                &token,
                "azure-emulator: no canned response for this query and it is not a 'print', 'range' or 'SyntheticRows' query",
            )
        }
        Err(QueryError::Syntax(e)) => syntax_error(e.pos, &e.token, &e.detail),
        Err(QueryError::UnknownTable { operator, name }) => semantic_error(
            "SEM0100",
            &format!(
                "'{operator}' operator: Failed to resolve table or column expression named '{name}'"
            ),
        ),
        Err(QueryError::InvalidStep(step)) => semantic_error(
            "InvalidRangeStep",
            &format!("'range' operator: the step must be a positive integer, got {step}"),
        ),
        Err(QueryError::TooManyRows(rows)) => bad_argument(json!({
            "code": "QueryLimitExceeded",
            "message": format!(
                "azure-emulator: 'range' would produce {rows} rows; at most {} rows are supported",
                kql::RANGE_MAX_ROWS
            ),
        })),
    }
}

/// A 200 answer built from a JSON value (canned or `print`), with the `Prefer` additions.
fn value_response(mut body: Value, headers: &HeaderMap, partial: bool) -> Response {
    let p = prefer(headers);
    if let Some(obj) = body.as_object_mut() {
        if p.statistics && !obj.contains_key("statistics") {
            let rows: usize = obj
                .get("tables")
                .and_then(Value::as_array)
                .map(|ts| {
                    ts.iter()
                        .filter_map(|t| t.get("rows").and_then(Value::as_array))
                        .map(Vec::len)
                        .sum()
                })
                .unwrap_or(0);
            obj.insert("statistics".to_owned(), statistics(rows));
        }
        if p.render && !obj.contains_key("render") {
            obj.insert("render".to_owned(), json!({}));
        }
        if partial {
            let error = serde_json::from_str(synthetic::PARTIAL_ERROR).unwrap_or(Value::Null);
            obj.insert("error".to_owned(), error);
        }
    }
    la_json(StatusCode::OK, &body)
}

/// A 200 answer for `range` / `SyntheticRows`, written (and for large results streamed)
/// without building a JSON tree.
fn plan_response(plan: Plan, headers: &HeaderMap, partial: bool) -> Response {
    let p = prefer(headers);
    let rows = usize::try_from(synthetic::row_count(&plan)).unwrap_or(usize::MAX);
    let extras = synthetic::Extras {
        statistics: p.statistics.then(|| statistics(rows).to_string()),
        render: p.render,
        partial,
    };
    let mut resp = (StatusCode::OK, synthetic::body(plan, extras)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(CONTENT_TYPE),
    );
    with_ids(resp)
}

fn statistics(rows: usize) -> Value {
    json!({"query": {
        "executionTime": 0.0012,
        "resourceUsage": {
            "cache": {"memory": {"hits": 0, "misses": 0, "total": 0}, "disk": {"hits": 0, "misses": 0, "total": 0}},
            "cpu": {"user": "00:00:00", "kernel": "00:00:00", "totalCpu": "00:00:00"},
            "memory": {"peakPerNode": 524384}
        },
        "inputDatasetStatistics": {"extents": {"total": 0, "scanned": 0}, "rows": {"total": 0, "scanned": 0}},
        "datasetStatistics": [{"tableRowCount": rows, "tableSize": 64 * rows}]
    }})
}

/// 400 with the nesting of `la-error-400-semantic-reconstructed.json`.
fn semantic_error(code: &str, message: &str) -> Response {
    bad_argument(json!({
        "code": "SemanticError",
        "message": "A semantic error occurred.",
        "innererror": {"code": code, "message": message},
    }))
}

fn syntax_error(pos: usize, token: &str, detail: &str) -> Response {
    bad_argument(json!({
        "code": "SyntaxError",
        "message": "Syntax Error",
        "innererror": {
            "code": "SYN0002",
            "message": format!("Query could not be parsed at '{token}' on line [1,{pos}]: {detail}"),
            "line": 1,
            "pos": pos,
            "token": token,
        }
    }))
}
