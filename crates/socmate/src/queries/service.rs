//! Running a query on the right provider and auditing it.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::audit::{self, NewAuditEntry};
use crate::auth::AuthUser;
use crate::http::FieldError;
use crate::id::ResourceId;
use crate::providers::{ProviderError, Providers};
use crate::siem::{QueryError, QueryRequest, QueryResult, millis};
use crate::store::StoreError;

pub const DEFAULT_TIMESPAN: &str = "P1D";
pub const DEFAULT_TIMEOUT_SECS: u64 = 180;
pub const MAX_TIMEOUT_SECS: u64 = 600;
pub const MAX_QUERY_CHARS: usize = 32 * 1024;

/// `POST /api/siem/query` and the investigation query body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryInput {
    /// KQL, at most 32 KiB.
    #[schema(value_type = String, min_length = 1, max_length = 32768, pattern = r"\S")]
    pub query: Option<String>,
    /// ISO 8601 duration or interval, default `P1D`.
    #[schema(pattern = "^[A-Za-z0-9:.+/-]{1,100}$")]
    pub timespan: Option<String>,
    /// The provider to query; omitted: the current default.
    #[schema(pattern = "^[0-9a-f]{24}$")]
    pub provider_id: Option<String>,
    /// Seconds to wait for the SIEM, 1 to 600 (default 180).
    #[schema(minimum = 1, maximum = 600)]
    pub timeout_s: Option<f64>,
}

/// Where a query runs.
#[derive(Debug, Clone)]
pub enum ProviderChoice {
    /// The caller named a provider.
    Explicit(String),
    /// The provider that is default now.
    Default,
    /// The provider an investigation pinned when it was opened.
    Pinned {
        provider_id: String,
        investigation_id: String,
    },
}

/// A successful query. Serialised by hand around the already-serialised tables (see
/// [`QueryResult`]) so a large result is never copied into a second buffer.
#[derive(Debug)]
pub struct QueryResponse {
    pub query_id: String,
    pub provider_id: String,
    pub investigation_id: Option<String>,
    pub result: QueryResult,
    pub latency_ms: f64,
}

#[derive(Serialize)]
struct Head<'a> {
    query_id: &'a str,
    provider_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    investigation_id: Option<&'a str>,
}

#[derive(Serialize)]
struct Tail<'a> {
    partial: bool,
    error: &'a Option<serde_json::Value>,
    statistics: &'a Option<Box<serde_json::value::RawValue>>,
    truncated: bool,
    values_left_encoded: usize,
    latency_ms: f64,
}

impl QueryResponse {
    /// The JSON body as three parts: `{…head…,"tables":`, the tables, `,…tail…}`.
    pub fn body_parts(self) -> serde_json::Result<[Vec<u8>; 3]> {
        let mut head = serde_json::to_vec(&Head {
            query_id: &self.query_id,
            provider_id: &self.provider_id,
            investigation_id: self.investigation_id.as_deref(),
        })?;
        head.pop(); // the closing brace
        head.extend_from_slice(br#","tables":"#);
        let mut tail = serde_json::to_vec(&Tail {
            partial: self.result.partial_error.is_some(),
            error: &self.result.partial_error,
            statistics: &self.result.statistics,
            truncated: self.result.truncated,
            values_left_encoded: self.result.values_left_encoded,
            latency_ms: self.latency_ms,
        })?;
        tail[0] = b',';
        Ok([head, self.result.tables_json, tail])
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryServiceError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("no default SIEM provider is set")]
    NoDefault,
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("{error}")]
    Query {
        error: QueryError,
        query_id: String,
        provider_id: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct Queries {
    pub providers: Providers,
    pub row_cap: usize,
}

/// A query whose caller went away before it finished (the console's Cancel, a closed
/// connection): the request's future is dropped, and with it the call to the SIEM and the query
/// slot it held. Dropped unfinished, this records it in the query audit as `cancelled`, so that
/// every query that reached a provider leaves a row.
struct AbandonedQuery {
    db: crate::store::Db,
    actor: String,
    actor_role: crate::auth::Role,
    provider_id: String,
    investigation_id: Option<String>,
    query: String,
    timespan: String,
    started: Instant,
    finished: bool,
}

impl Drop for AbandonedQuery {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let db = self.db.clone();
        let (actor, provider_id, query, timespan) = (
            std::mem::take(&mut self.actor),
            std::mem::take(&mut self.provider_id),
            std::mem::take(&mut self.query),
            std::mem::take(&mut self.timespan),
        );
        let (actor_role, investigation_id) = (self.actor_role, self.investigation_id.take());
        let duration_ms = millis(self.started.elapsed());
        runtime.spawn(async move {
            let id = ResourceId::generate().to_string();
            let entry = NewAuditEntry {
                id: &id,
                actor: &actor,
                actor_role,
                provider_id: &provider_id,
                investigation_id: investigation_id.as_deref(),
                query: &query,
                timespan: &timespan,
                status: "cancelled",
                error_code: None,
                row_count: 0,
                duration_ms,
            };
            if let Err(e) = audit::record(&db, &entry).await {
                tracing::warn!(error = %e, "cannot record a cancelled query");
            }
            tracing::info!(query_id = id, provider.id = %provider_id, "query cancelled by its caller");
            metrics::counter!("socmate_queries_total", "status" => "cancelled", "error" => "").increment(1);
        });
    }
}

pub(super) struct Validated {
    pub(super) query: String,
    pub(super) timespan: String,
    timeout: Duration,
}

impl Queries {
    pub async fn run(
        &self,
        user: &AuthUser,
        input: QueryInput,
        choice: ProviderChoice,
    ) -> Result<QueryResponse, QueryServiceError> {
        let valid = validate(&input)?;
        let (provider_id, investigation_id) = match choice {
            ProviderChoice::Explicit(id) => (id, None),
            ProviderChoice::Pinned {
                provider_id,
                investigation_id,
            } => (provider_id, Some(investigation_id)),
            ProviderChoice::Default => {
                let provider = self
                    .providers
                    .default_provider()
                    .await?
                    .ok_or(QueryServiceError::NoDefault)?;
                (provider.id, None)
            }
        };
        let (provider, connector) = self.providers.connector_for(&provider_id).await?;
        let started = Instant::now();
        let mut abandoned = AbandonedQuery {
            db: self.providers.db.clone(),
            actor: user.email.clone(),
            actor_role: user.role,
            provider_id: provider.id.clone(),
            investigation_id: investigation_id.clone(),
            query: valid.query.clone(),
            timespan: valid.timespan.clone(),
            started,
            finished: false,
        };
        let outcome = connector
            .query(QueryRequest {
                query: valid.query.clone(),
                timespan: valid.timespan.clone(),
                timeout: valid.timeout,
                row_cap: self.row_cap,
            })
            .await;
        abandoned.finished = true;
        let elapsed = started.elapsed();
        let query_id = ResourceId::generate().to_string();
        let (status, error_code, rows) = match &outcome {
            Ok(r) if r.partial_error.is_some() => ("partial", None, r.row_count),
            Ok(r) => ("succeeded", None, r.row_count),
            Err(e) => ("failed", Some(error_code(e)), 0),
        };
        // The audit row is written before the answer leaves: no audit, no answer.
        audit::record(
            &self.providers.db,
            &NewAuditEntry {
                id: &query_id,
                actor: &user.email,
                actor_role: user.role,
                provider_id: &provider.id,
                investigation_id: investigation_id.as_deref(),
                query: &valid.query,
                timespan: &valid.timespan,
                status,
                error_code,
                row_count: rows,
                duration_ms: millis(elapsed),
            },
        )
        .await?;
        tracing::info!(query_id, provider.id = %provider.id, actor = %user.email, status, rows, duration_ms = millis(elapsed), "query ran");
        metrics::counter!("socmate_queries_total", "status" => status, "error" => error_code.unwrap_or("")).increment(1);
        metrics::histogram!("socmate_query_duration_seconds").record(elapsed.as_secs_f64());
        match outcome {
            Ok(result) => Ok(QueryResponse {
                query_id,
                provider_id: provider.id,
                investigation_id,
                result,
                latency_ms: millis(elapsed),
            }),
            Err(error) => Err(QueryServiceError::Query {
                error,
                query_id,
                provider_id: provider.id,
            }),
        }
    }
}

pub fn error_code(error: &QueryError) -> &'static str {
    match error {
        QueryError::Invalid { .. } => "query_invalid",
        QueryError::Denied { code, .. } => code,
        QueryError::Throttled { .. } => "upstream_throttled",
        QueryError::Timeout(_) => "query_timeout",
        QueryError::Unavailable(_) => "upstream_unavailable",
        QueryError::Unreadable(_) => "upstream_unreadable",
    }
}

pub(super) fn validate(input: &QueryInput) -> Result<Validated, QueryServiceError> {
    let mut errors = Vec::new();
    let mut add = |field: &str, message: String| {
        errors.push(FieldError {
            field: field.into(),
            message,
        })
    };
    let query = input.query.as_deref().map(str::trim).unwrap_or_default();
    if query.is_empty() {
        add(
            "query",
            "query is required: the KQL to run, e.g. \"SecurityIncident | take 10\"".into(),
        );
    } else if query.chars().count() > MAX_QUERY_CHARS {
        add(
            "query",
            format!("query must be at most {MAX_QUERY_CHARS} characters"),
        );
    }
    let timespan = input.timespan.as_deref().unwrap_or(DEFAULT_TIMESPAN);
    let timespan_ok = !timespan.is_empty()
        && timespan.len() <= 100
        && timespan
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":.-+/".contains(&b));
    if !timespan_ok {
        add(
            "timespan",
            "timespan must be an ISO 8601 duration such as PT1H or P7D, or an interval start/end"
                .into(),
        );
    }
    let timeout = match input.timeout_s {
        None => Duration::from_secs(DEFAULT_TIMEOUT_SECS),
        Some(t) if t.is_finite() && t >= 1.0 && t <= MAX_TIMEOUT_SECS as f64 => {
            Duration::from_secs_f64(t)
        }
        Some(_) => {
            add(
                "timeout_s",
                format!("timeout_s must be between 1 and {MAX_TIMEOUT_SECS} seconds"),
            );
            Duration::ZERO
        }
    };
    if !errors.is_empty() {
        return Err(QueryServiceError::Invalid(errors));
    }
    Ok(Validated {
        query: query.to_owned(),
        timespan: timespan.to_owned(),
        timeout,
    })
}
