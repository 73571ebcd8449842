//! Log Analytics query API (`/v1/workspaces/{workspaceId}/query`), with the real check order and
//! error envelopes (`shared/fixtures/azure/la-*.json`): authentication, audience, workspace,
//! `Data.Read` role, workspace RBAC, then the body. Queries are answered from canned responses
//! or by evaluating `print` statements.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::kql;
use crate::state::{Bearer, Shared};
use crate::token::LOG_ANALYTICS_AUDIENCES;
use crate::util;

const CONTENT_TYPE: &str = "application/json; charset=utf-8";
const INSUFFICIENT_ACCESS: &str =
    "The provided credentials have insufficient access to perform the requested operation";
const INVALID_PROPERTIES: &str = "The request had some invalid properties";

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
    let query = raw.as_deref().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "query")
            .map(|(_, v)| v.into_owned())
    });
    let Some(query) = query else {
        return bad_argument(json!({
            "code": "QueryValidationError",
            "message": "The 'query' parameter is required",
        }));
    };
    run_query(&shared, &workspace, &query, &headers)
}

/// Authentication and authorization, in the order the real service applies them.
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
        let allowed = LOG_ANALYTICS_AUDIENCES
            .iter()
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(",");
        return Err(la_json(
            StatusCode::FORBIDDEN,
            &json!({"error": {"code": "InvalidAuthenticationTokenAudience", "message": format!(
                "The access token has been obtained from wrong audience or resource '{}'. It should exactly match (including forward slash) with one of the allowed audiences {allowed}.",
                token.audience
            )}}),
        ));
    }
    let Some(caller) = shared.caller(token) else {
        return Err(invalid_token());
    };
    if caller.tenant.workspace(workspace).is_none() {
        return Err(la_json(
            StatusCode::NOT_FOUND,
            &json!({"error": {"message": "The requested path does not exist", "code": "PathNotFoundError"}}),
        ));
    }
    let has_role = caller.app.as_ref().is_some_and(|a| a.has_role("Data.Read"));
    if !has_role {
        return Err(la_json(
            StatusCode::FORBIDDEN,
            &json!({"error": {"message": INSUFFICIENT_ACCESS, "code": "InsufficientAccessError", "innererror": {
                "code": "UnauthorizedClient",
                "message": format!("The service principal does not have sufficient permissions to access this resource: {workspace}"),
            }}}),
        ));
    }
    let has_rbac = caller
        .app
        .as_ref()
        .is_some_and(|a| a.can_read_workspace(workspace));
    if !has_rbac {
        return Err(la_json(
            StatusCode::FORBIDDEN,
            &json!({"error": {"message": INSUFFICIENT_ACCESS, "code": "InsufficientAccessError", "correlationId": ""}}),
        ));
    }
    Ok(())
}

fn invalid_token() -> Response {
    la_json(
        StatusCode::FORBIDDEN,
        &json!({"error": {"code": "InvalidAuthenticationToken", "message": "The access token is invalid."}}),
    )
}

#[derive(Default)]
struct Prefer {
    statistics: bool,
    render: bool,
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
                _ => {}
            }
        }
    }
    p
}

fn run_query(shared: &Shared, workspace: &str, query: &str, headers: &HeaderMap) -> Response {
    let wanted = query.trim();
    let canned = shared.with_config(|c| {
        c.tenants
            .iter()
            .filter_map(|t| t.workspace(workspace))
            .flat_map(|w| w.canned.iter())
            .find(|cq| cq.query.trim() == wanted)
            .map(|cq| cq.response.clone())
    });
    let mut body = match canned {
        Some(v) => v,
        None => match kql::evaluate_print(wanted) {
            Ok(Some(table)) => json!({"tables": [table]}),
            Ok(None) => {
                let token: String = wanted
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '|')
                    .collect();
                return syntax_error(
                    0,
                    &token,
                    "azure-emulator: no canned response for this query and it is not a 'print' statement",
                );
            }
            Err(e) => return syntax_error(e.pos, &e.token, &e.detail),
        },
    };
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
    }
    la_json(StatusCode::OK, &body)
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
