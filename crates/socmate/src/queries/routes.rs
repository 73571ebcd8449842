//! `/api/siem/query` and `/api/siem/queries` (admins and analysts).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit::{self, AuditEntry};
use super::service::{ProviderChoice, Queries, QueryInput, QueryResponse, QueryServiceError};
use crate::auth::{AuthUser, Role};
use crate::http::{ApiError, AppJson, AppQuery, page};
use crate::siem::QueryError;
use serde_json::Value;

pub fn router() -> OpenApiRouter<Queries> {
    OpenApiRouter::new()
        .routes(routes!(run_query))
        .routes(routes!(list_queries))
        .merge(super::saved::router())
}

pub(crate) const TAG: &str = "Queries and investigations";

/// The shape of a query result. The body is streamed by hand (see `QueryResponse`), so this type
/// only describes it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct QueryResultBody {
    query_id: String,
    provider_id: String,
    /// Set for queries run through an investigation.
    investigation_id: Option<String>,
    tables: Vec<ResultTable>,
    /// The SIEM returned partial results; `error` says why.
    partial: bool,
    #[schema(value_type = Option<Object>)]
    error: Option<Value>,
    #[schema(value_type = Option<Object>)]
    statistics: Option<Value>,
    /// More rows than SOCMATE_QUERY_ROW_CAP: the rest were dropped.
    truncated: bool,
    /// Structured (`dynamic`) values nested deeper than 64 levels, sent as the JSON text the
    /// SIEM returned (a string) rather than as JSON.
    values_left_encoded: u64,
    latency_ms: f64,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct ResultTable {
    name: String,
    columns: Vec<ResultColumn>,
    /// Rows of values in column order: longs as integers, decimals as strings, dynamic as JSON.
    #[schema(value_type = Vec<Vec<Object>>)]
    rows: Vec<Vec<Value>>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct ResultColumn {
    name: String,
    /// Kusto type: bool, datetime, dynamic, int, long, real, string, timespan, guid, decimal.
    #[schema(rename = "type")]
    kind: String,
}

/// Run a KQL query on a provider (the default unless `provider_id` is given). With
/// `Accept: text/csv` the answer is the first result table as CSV, every row kept.
///
/// A JSON result with more than 1 MiB of tables is streamed as it downloads (no
/// `Content-Length`). Should the SIEM's answer break off after that, the response is cut short
/// (its JSON incomplete) and the query is audited `failed`: run it again.
#[utoipa::path(post, path = "/query", tag = TAG, request_body = QueryInput,
    responses((status = 200, description = "The result tables (JSON), or the first as CSV",
        content((QueryResultBody = "application/json"), (String = "text/csv")))))]
async fn run_query(
    State(queries): State<Queries>,
    user: AuthUser,
    headers: axum::http::HeaderMap,
    AppJson(mut input): AppJson<QueryInput>,
) -> Result<Response, ApiError> {
    let choice = match input.provider_id.take() {
        Some(id) => ProviderChoice::Explicit(id),
        None => ProviderChoice::Default,
    };
    let response = queries.run(&user, input, choice).await?;
    let wants_csv = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().starts_with("text/csv")));
    if !wants_csv {
        return Ok(response.into_response());
    }
    let query_id = response.query_id.clone();
    let tables_json = response.into_tables_json().await?;
    let csv = super::export::first_table_csv(&tables_json).map_err(|e| ApiError::internal(&e))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"query-{query_id}.csv\""),
            ),
        ],
        csv,
    )
        .into_response())
}

impl IntoResponse for QueryResponse {
    fn into_response(self) -> Response {
        let (length, body) = match self.into_body() {
            Ok(body) => body,
            Err(e) => return ApiError::internal(&e).into_response(),
        };
        let mut response = (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from_stream(body),
        )
            .into_response();
        if let Some(length) = length {
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, length.into());
        }
        response
    }
}

impl From<QueryServiceError> for ApiError {
    fn from(e: QueryServiceError) -> Self {
        match e {
            QueryServiceError::Invalid(errors) => ApiError::validation(errors),
            QueryServiceError::NoDefault => ApiError::conflict(
                "no_default_provider",
                "no default SIEM provider is set: pass provider_id, or ask an admin to set a default (PUT /api/admin/siem-providers/{id}/default)",
            ),
            QueryServiceError::Provider(crate::providers::ProviderError::NotFound) => {
                ApiError::not_found(
                    "no live SIEM provider with this id (deleted providers cannot be queried)",
                )
            }
            QueryServiceError::Provider(e) => e.into(),
            QueryServiceError::Store(e) => e.into(),
            QueryServiceError::Query {
                error,
                query_id,
                provider_id,
            } => {
                let code = super::service::error_code(&error);
                let context = format!("(query {query_id} on provider {provider_id})");
                match error {
                    QueryError::Invalid { message, upstream } => {
                        ApiError::new(StatusCode::BAD_REQUEST, code, format!("{message} {context}"))
                            .with_upstream(upstream)
                    }
                    // The SIEM refused the provider's credentials or permissions: the request itself is fine
                    // and retrying will not help until an admin fixes the provider (424, not a 5xx).
                    QueryError::Denied { hint, .. } => ApiError::new(StatusCode::FAILED_DEPENDENCY, code, format!("{hint} {context}")),
                    QueryError::Throttled { retry_after } => ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        code,
                        format!("the SIEM is throttling queries from this provider; retry later {context}"),
                    )
                    .with_retry_after(retry_after.map_or(5, |d| d.as_secs_f64().ceil() as u64).max(1)),
                    QueryError::Timeout(limit) => ApiError::new(
                        StatusCode::GATEWAY_TIMEOUT,
                        code,
                        format!("the query did not finish within {} s; narrow the timespan or raise timeout_s (max 600) {context}", limit.as_secs()),
                    ),
                    QueryError::Unavailable(cause) => {
                        tracing::warn!(%cause, "SIEM unavailable for a query");
                        ApiError::new(StatusCode::BAD_GATEWAY, code, format!("the SIEM could not be reached or failed; retry later {context}"))
                    }
                    QueryError::Unreadable(cause) => ApiError::new(StatusCode::BAD_GATEWAY, code, format!("{cause} {context}")),
                }
            }
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Page {
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct AuditPage {
    queries: Vec<AuditEntry>,
    next_cursor: Option<String>,
}

const MAX_PAGE: i64 = 100;

/// The query audit: every query that reached a provider, newest first (analysts: their own).
#[utoipa::path(get, path = "/queries", tag = TAG, params(Page),
    responses((status = 200, description = "One page of query records", body = AuditPage)))]
async fn list_queries(
    State(queries): State<Queries>,
    user: AuthUser,
    AppQuery(page): AppQuery<Page>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = page::limit(page.limit, MAX_PAGE)?;
    let before = page::seq_cursor(page.cursor.as_deref())?;
    // Admins see every query; analysts their own.
    let scope = if user.role == Role::Admin {
        audit::AuditScope::Everyone
    } else {
        audit::AuditScope::Actor(&user.email)
    };
    let mut entries = audit::list(&queries.providers.db, scope, before, limit + 1).await?;
    let next_cursor = page::next_cursor(&mut entries, limit, |e| e.seq.to_string());
    Ok(Json(AuditPage {
        queries: entries,
        next_cursor,
    }))
}
