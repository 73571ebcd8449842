//! Running a query on the right provider and auditing it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::audit::{self, NewAuditEntry};
use crate::auth::AuthUser;
use crate::http::FieldError;
use crate::id::ResourceId;
use crate::providers::{ProviderError, Providers};
use crate::siem::{QueryError, QueryRequest, ResultPiece, ResultStream, ResultSummary, millis};
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

/// Results with up to this much table JSON are answered whole, after their audit row, so any
/// failure is an HTTP status. A larger one is streamed as it downloads: a failure after its first
/// bytes can only cut the response short (the client then holds incomplete JSON, never a quietly
/// shorter result), and its audit row is written before the last bytes ("no audit, no tail").
pub const STREAM_ABOVE_BYTES: usize = 1024 * 1024;

/// A successful query. Serialised by hand around the already-serialised tables (see
/// [`crate::siem::QueryResult`]) so a large result is never copied into a second buffer.
#[derive(Debug)]
pub struct QueryResponse {
    pub query_id: String,
    pub provider_id: String,
    pub investigation_id: Option<String>,
    pub tables: Tables,
}

/// A successful query's table JSON.
#[derive(Debug)]
pub enum Tables {
    /// All of it, audited.
    Whole {
        pieces: Vec<Bytes>,
        summary: ResultSummary,
        latency_ms: f64,
    },
    /// The first pieces and the rest to come; audited when it ends.
    Streaming {
        pieces: Vec<Bytes>,
        rest: ResultStream,
        record: QueryRecord,
    },
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

/// `{…head…,"tables":`
fn head(response: &QueryResponse) -> serde_json::Result<Bytes> {
    let mut head = serde_json::to_vec(&Head {
        query_id: &response.query_id,
        provider_id: &response.provider_id,
        investigation_id: response.investigation_id.as_deref(),
    })?;
    head.pop(); // the closing brace
    head.extend_from_slice(br#","tables":"#);
    Ok(head.into())
}

/// `,…tail…}`
fn tail(summary: &ResultSummary, latency_ms: f64) -> serde_json::Result<Bytes> {
    let mut tail = serde_json::to_vec(&Tail {
        partial: summary.partial_error.is_some(),
        error: &summary.partial_error,
        statistics: &summary.statistics,
        truncated: summary.truncated,
        values_left_encoded: summary.values_left_encoded,
        latency_ms,
    })?;
    tail[0] = b',';
    Ok(tail.into())
}

/// The JSON body of a response, piece by piece.
pub type BodyPieces = futures::stream::BoxStream<'static, std::io::Result<Bytes>>;

impl QueryResponse {
    /// All of the table JSON (the CSV export): a streamed result is read to its end and audited
    /// first.
    pub async fn into_tables_json(self) -> Result<Vec<u8>, QueryServiceError> {
        let (pieces, rest, mut record) = match self.tables {
            Tables::Whole { pieces, .. } => return Ok(pieces.concat()),
            Tables::Streaming {
                pieces,
                rest,
                record,
            } => (pieces, rest, record),
        };
        let mut tables_json = pieces.concat();
        match rest.collect().await {
            Ok(rest) => {
                record.record(Ok(&rest.summary)).await?;
                tables_json.extend_from_slice(&rest.tables_json);
                Ok(tables_json)
            }
            Err(error) => {
                record.record(Err(&error)).await?;
                Err(QueryServiceError::Query {
                    error,
                    query_id: self.query_id,
                    provider_id: self.provider_id,
                })
            }
        }
    }

    /// The JSON body, and its length when it is whole.
    pub fn into_body(self) -> serde_json::Result<(Option<usize>, BodyPieces)> {
        let head = head(&self)?;
        match self.tables {
            Tables::Whole {
                pieces,
                summary,
                latency_ms,
            } => {
                let tail = tail(&summary, latency_ms)?;
                let parts: Vec<Bytes> = std::iter::once(head)
                    .chain(pieces)
                    .chain(std::iter::once(tail))
                    .collect();
                let length = parts.iter().map(Bytes::len).sum();
                let body = futures::stream::iter(parts.into_iter().map(Ok));
                Ok((Some(length), body.boxed()))
            }
            Tables::Streaming {
                pieces,
                rest,
                record,
            } => {
                let queued: VecDeque<Bytes> = std::iter::once(head).chain(pieces).collect();
                Ok((None, streamed_body(queued, rest, record)))
            }
        }
    }
}

/// The queued pieces, then the rest of the result as it arrives, then — once the audit row is
/// written — the tail. A result that breaks off ends the body with an error, which cuts the
/// response short.
fn streamed_body(queued: VecDeque<Bytes>, rest: ResultStream, record: QueryRecord) -> BodyPieces {
    futures::stream::unfold(Some((queued, rest, record)), |state| async move {
        let (mut queued, mut rest, mut record) = state?;
        if let Some(piece) = queued.pop_front() {
            return Some((Ok(piece), Some((queued, rest, record))));
        }
        let last = match rest.next().await {
            ResultPiece::Tables(piece) => return Some((Ok(piece), Some((queued, rest, record)))),
            ResultPiece::End(Ok(summary)) => match record.record(Ok(&summary)).await {
                Ok(latency_ms) => tail(&summary, latency_ms).map_err(std::io::Error::other),
                Err(e) => Err(std::io::Error::other(format!(
                    "cannot record the query: {e}"
                ))),
            },
            ResultPiece::End(Err(error)) => {
                tracing::warn!(query_id = %record.query_id, error = %error,
                    "a streamed result broke off; its response is cut short");
                if let Err(e) = record.record(Err(&error)).await {
                    tracing::warn!(error = %e, "cannot record a query that broke off");
                }
                Err(std::io::Error::other(error.to_string()))
            }
        };
        Some((last, None))
    })
    .boxed()
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

/// A query's audit row to be. `record` writes it once the query ended; dropped before that —
/// its caller went away (the console's Cancel, a closed connection), and with the request's
/// future went the call to the SIEM and the query slot it held — it records the query as
/// `cancelled`, so that every query that reached a provider leaves a row.
#[derive(Debug)]
pub struct QueryRecord {
    db: crate::store::Db,
    query_id: String,
    actor: String,
    actor_role: crate::auth::Role,
    provider_id: String,
    investigation_id: Option<String>,
    query: String,
    timespan: String,
    started: Instant,
    finished: bool,
}

impl QueryRecord {
    /// Writes the audit row, log line and metrics of a query that ended; returns its latency.
    async fn record(
        &mut self,
        outcome: Result<&ResultSummary, &QueryError>,
    ) -> Result<f64, StoreError> {
        self.finished = true;
        let elapsed = self.started.elapsed();
        let (status, error_code, rows) = match outcome {
            Ok(s) if s.partial_error.is_some() => ("partial", None, s.row_count),
            Ok(s) => ("succeeded", None, s.row_count),
            Err(e) => ("failed", Some(error_code(e)), 0),
        };
        audit::record(
            &self.db,
            &NewAuditEntry {
                id: &self.query_id,
                actor: &self.actor,
                actor_role: self.actor_role,
                provider_id: &self.provider_id,
                investigation_id: self.investigation_id.as_deref(),
                query: &self.query,
                timespan: &self.timespan,
                status,
                error_code,
                row_count: rows,
                duration_ms: millis(elapsed),
            },
        )
        .await?;
        tracing::info!(query_id = self.query_id, provider.id = %self.provider_id, actor = %self.actor, status, rows, duration_ms = millis(elapsed), "query ran");
        metrics::counter!("socmate_queries_total", "status" => status, "error" => error_code.unwrap_or("")).increment(1);
        metrics::histogram!("socmate_query_duration_seconds").record(elapsed.as_secs_f64());
        Ok(millis(elapsed))
    }
}

impl Drop for QueryRecord {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let db = self.db.clone();
        let (id, actor, provider_id, query, timespan) = (
            std::mem::take(&mut self.query_id),
            std::mem::take(&mut self.actor),
            std::mem::take(&mut self.provider_id),
            std::mem::take(&mut self.query),
            std::mem::take(&mut self.timespan),
        );
        let (actor_role, investigation_id) = (self.actor_role, self.investigation_id.take());
        let duration_ms = millis(self.started.elapsed());
        runtime.spawn(async move {
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

/// A result's start: all of it, or as much as is answered before streaming the rest.
enum Start {
    Whole {
        pieces: Vec<Bytes>,
        summary: ResultSummary,
    },
    Streaming {
        pieces: Vec<Bytes>,
        rest: ResultStream,
    },
}

/// Reads a result until it ends or passes [`STREAM_ABOVE_BYTES`].
async fn start(mut stream: ResultStream) -> Result<Start, QueryError> {
    let (mut pieces, mut size) = (Vec::new(), 0);
    loop {
        match stream.next().await {
            ResultPiece::Tables(piece) => {
                size += piece.len();
                pieces.push(piece);
                if size > STREAM_ABOVE_BYTES {
                    return Ok(Start::Streaming {
                        pieces,
                        rest: stream,
                    });
                }
            }
            ResultPiece::End(summary) => {
                return Ok(Start::Whole {
                    pieces,
                    summary: summary?,
                });
            }
        }
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
        let mut record = QueryRecord {
            db: self.providers.db.clone(),
            query_id: ResourceId::generate().to_string(),
            actor: user.email.clone(),
            actor_role: user.role,
            provider_id: provider.id.clone(),
            investigation_id: investigation_id.clone(),
            query: valid.query.clone(),
            timespan: valid.timespan.clone(),
            started: Instant::now(),
            finished: false,
        };
        let request = QueryRequest {
            query: valid.query,
            timespan: valid.timespan,
            timeout: valid.timeout,
            row_cap: self.row_cap,
        };
        let outcome = match connector.query(request).await {
            Ok(stream) => start(stream).await,
            Err(error) => Err(error),
        };
        let (query_id, provider_id) = (record.query_id.clone(), provider.id);
        let tables = match outcome {
            // The audit row is written before the answer leaves: no audit, no answer.
            Ok(Start::Whole { pieces, summary }) => {
                let latency_ms = record.record(Ok(&summary)).await?;
                Tables::Whole {
                    pieces,
                    summary,
                    latency_ms,
                }
            }
            Ok(Start::Streaming { pieces, rest }) => Tables::Streaming {
                pieces,
                rest,
                record,
            },
            Err(error) => {
                record.record(Err(&error)).await?;
                return Err(QueryServiceError::Query {
                    error,
                    query_id,
                    provider_id,
                });
            }
        };
        Ok(QueryResponse {
            query_id,
            provider_id,
            investigation_id,
            tables,
        })
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
