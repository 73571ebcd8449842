//! Running KQL on the Log Analytics query API.
//!
//! A result is transcoded while it downloads: a blocking thread scans each chunk as it arrives and
//! sends SoCMate's table JSON on in pieces, so the answer is never held whole, neither as received
//! nor as output (Log Analytics answers reach ~100 MiB).
//! Throttling is retried within the caller's timeout honouring `Retry-After`, a rejected token is
//! renewed once, and at most [`QUERIES_PER_APP`] queries per app registration run at once, under
//! Log Analytics' limit of five concurrent queries per identity.

use std::time::Duration;

use reqwest::StatusCode;
use secrecy::ExposeSecret as _;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::SentinelConnection;
use super::cloud::join_segments;
use super::diagnose;
use super::outbound::{ErrorEnvelope, SendError, read_body_limited, retry_after, send};
use super::token::{Freshness, TokenError};
use super::transcode::{TranscodeError, Transcoded, Transcoder};
use crate::siem::{
    QueryError, QueryRequest, QueryResult, ResultPiece, ResultStream, ResultSummary,
};

/// Concurrent queries per app registration (Log Analytics queues above five).
pub const QUERIES_PER_APP: usize = 4;
/// Log Analytics returns at most ~100 MiB; anything far above is not a Log Analytics answer.
const MAX_RESULT_BYTES: usize = 256 * 1024 * 1024;
/// Error bodies are small; anything larger is not worth reading.
const MAX_ERROR_BYTES: usize = 1024 * 1024;
/// Chunks in flight between the download and the parser thread.
const CHUNKS_IN_FLIGHT: usize = 64;
/// Table JSON sent on in pieces of about this size.
const PIECE_BYTES: usize = 256 * 1024;
const MAX_THROTTLED_ATTEMPTS: u32 = 3;

impl SentinelConnection {
    pub(super) async fn run_query(
        &self,
        request: QueryRequest,
    ) -> Result<ResultStream, QueryError> {
        // One deadline for everything the query waits on — a query slot, the token, Log
        // Analytics and the body — so that `timeout_s` is what the caller waits at most.
        let deadline = Instant::now() + request.timeout;
        let slots = self
            .sentinel
            .query_slots(&self.credentials.tenant_id, &self.credentials.client_id);
        let permit = tokio::time::timeout_at(deadline, slots.acquire_owned())
            .await
            .map_err(|_| QueryError::Timeout(request.timeout))?
            .map_err(|_| QueryError::Unavailable("query slots closed".into()))?;

        let scope = self.endpoints.log_analytics_scope.clone();
        let mut token = self
            .token(&scope, Freshness::Cached, deadline)
            .await
            .map_err(|e| self.token_error(&e, &request))?;
        let url = join_segments(
            &self.endpoints.log_analytics,
            &["v1", "workspaces", &self.credentials.workspace_id, "query"],
        );
        let body = serde_json::json!({"query": request.query, "timespan": request.timespan});
        let (mut renewed_token, mut throttled, mut server_errors) = (false, 0u32, 0u32);
        loop {
            // Log Analytics stops the query after `wait`: what is left of the deadline.
            let wait_secs = deadline
                .saturating_duration_since(Instant::now())
                .as_secs()
                .clamp(1, 600);
            let sent = send(
                self.sentinel
                    .http
                    .post(url.clone())
                    .bearer_auth(token.expose_secret())
                    .header(
                        "Prefer",
                        format!("wait={wait_secs},include-statistics=true"),
                    )
                    .json(&body),
                deadline,
            )
            .await;
            let response = match sent {
                Ok(r) => r,
                Err(SendError::Timeout) => return Err(QueryError::Timeout(request.timeout)),
                Err(SendError::Unreachable(cause)) => return Err(QueryError::Unavailable(cause)),
            };
            let status = response.status();
            if status == StatusCode::OK {
                return Ok(stream_result(
                    response,
                    deadline,
                    request.row_cap,
                    request.timeout,
                    permit,
                ));
            }
            let retry = retry_after(&response);
            let body = match read_body_limited(response, deadline, MAX_ERROR_BYTES).await {
                Ok(Ok(b)) => b,
                Ok(Err(_)) => Vec::new(),
                Err(SendError::Timeout) => return Err(QueryError::Timeout(request.timeout)),
                Err(SendError::Unreachable(cause)) => return Err(QueryError::Unavailable(cause)),
            };
            match status {
                StatusCode::NO_CONTENT => {
                    return Ok(ResultStream::whole(QueryResult {
                        tables_json: b"[]".to_vec(),
                        summary: ResultSummary::default(),
                    }));
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    throttled += 1;
                    let wait = retry.unwrap_or(Duration::from_secs(1 << throttled.min(4)));
                    if throttled >= MAX_THROTTLED_ATTEMPTS || Instant::now() + wait >= deadline {
                        return Err(QueryError::Throttled { retry_after: retry });
                    }
                    tracing::info!(
                        wait_ms = wait.as_millis() as u64,
                        "Log Analytics throttled the query; retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
                StatusCode::GATEWAY_TIMEOUT => return Err(QueryError::Timeout(request.timeout)),
                s if s.is_server_error() && server_errors == 0 => {
                    server_errors += 1;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                s => {
                    let envelope = ErrorEnvelope::parse(&body);
                    let codes = envelope.codes();
                    let token_rejected = diagnose::rejects_the_token(s.as_u16(), &codes);
                    if token_rejected && !renewed_token {
                        // A revoked or rotated token: get a fresh one, once.
                        renewed_token = true;
                        token = self
                            .token(&scope, Freshness::Fresh, deadline)
                            .await
                            .map_err(|e| self.token_error(&e, &request))?;
                        continue;
                    }
                    if s == StatusCode::FORBIDDEN {
                        // Whatever the token lacked, the next query asks for a new one.
                        self.sentinel.forget_credentials(
                            &self.credentials.tenant_id,
                            &self.credentials.client_id,
                        );
                    }
                    tracing::warn!(
                        http_status = s.as_u16(),
                        upstream_codes = %codes.join(" > "),
                        correlation_id = envelope.trace_id().unwrap_or(""),
                        workspace_id = %self.credentials.workspace_id,
                        "Log Analytics refused the query"
                    );
                    return Err(upstream_error(
                        s,
                        &body,
                        &envelope,
                        &self.credentials.workspace_id,
                    ));
                }
            }
        }
    }

    fn token_error(&self, error: &TokenError, request: &QueryRequest) -> QueryError {
        match error {
            TokenError::Send(SendError::Timeout) => QueryError::Timeout(request.timeout),
            TokenError::Send(SendError::Unreachable(cause)) => {
                QueryError::Unavailable(cause.clone())
            }
            other => {
                let d = diagnose::token_failure(
                    other,
                    &self.credentials.tenant_id,
                    &self.credentials.client_id,
                    self.endpoints
                        .authority_host
                        .host_str()
                        .unwrap_or("Entra ID"),
                    request.timeout.as_secs_f64(),
                );
                tracing::warn!(
                    code = d.code,
                    aadsts = other
                        .aadsts()
                        .map(|c| format!("AADSTS{c}"))
                        .unwrap_or_default(),
                    correlation_id = other.correlation_id().unwrap_or(""),
                    "token request for a query failed"
                );
                QueryError::Denied {
                    code: d.code,
                    hint: d.hint,
                }
            }
        }
    }
}

fn upstream_error(
    status: StatusCode,
    body: &[u8],
    envelope: &ErrorEnvelope,
    workspace_id: &str,
) -> QueryError {
    match status.as_u16() {
        400 => QueryError::Invalid {
            message: format!(
                "Log Analytics rejected the query: {}",
                envelope.message_chain()
            ),
            upstream: Box::new(
                serde_json::from_slice::<serde_json::Value>(body)
                    .ok()
                    .and_then(|mut v| v.get_mut("error").map(serde_json::Value::take))
                    .unwrap_or(serde_json::Value::Null),
            ),
        },
        s @ (401 | 403 | 404) => {
            let d = diagnose::log_analytics_failure(s, envelope, workspace_id);
            QueryError::Denied {
                code: d.code,
                hint: d.hint,
            }
        }
        s => QueryError::Unavailable(format!("Log Analytics answered HTTP {s}")),
    }
}

/// Streams a 200 answer: a task downloads it while a blocking thread transcodes each chunk as it
/// arrives (a large result costs seconds of CPU, which must not hold up the runtime's workers
/// and with them every other request) and sends the table JSON on in pieces. The task holds the
/// query slot until the download ends, and stops early once nobody reads the stream.
fn stream_result(
    mut response: reqwest::Response,
    deadline: Instant,
    row_cap: usize,
    timeout: Duration,
    permit: OwnedSemaphorePermit,
) -> ResultStream {
    let (pieces, stream) = ResultStream::channel();
    let (chunks, mut receiver) = tokio::sync::mpsc::channel::<bytes::Bytes>(CHUNKS_IN_FLIGHT);
    let parser_pieces = pieces.clone();
    let parser = tokio::task::spawn_blocking(move || {
        let mut transcoder = Transcoder::new(row_cap, PIECE_BYTES * 2);
        while let Some(chunk) = receiver.blocking_recv() {
            transcoder.feed(chunk.as_ref())?;
            if transcoder.output_len() >= PIECE_BYTES {
                let piece = transcoder.take_output(PIECE_BYTES * 2);
                if parser_pieces
                    .blocking_send(ResultPiece::Tables(piece.into()))
                    .is_err()
                {
                    return Ok(None); // nobody reads any more
                }
            }
        }
        transcoder.finish().map(Some)
    });
    tokio::spawn(async move {
        let _slot = permit;
        let mut received = 0usize;
        let download = loop {
            let next = tokio::select! {
                _ = pieces.closed() => break Ok(()),
                next = tokio::time::timeout_at(deadline, response.chunk()) => next,
            };
            let chunk = match next {
                Err(_) => break Err(QueryError::Timeout(timeout)),
                Ok(Err(e)) if e.is_timeout() => break Err(QueryError::Timeout(timeout)),
                Ok(Err(e)) => break Err(QueryError::Unavailable(e.to_string())),
                Ok(Ok(None)) => break Ok(()),
                Ok(Ok(Some(chunk))) => chunk,
            };
            received += chunk.len();
            if received > MAX_RESULT_BYTES {
                break Err(QueryError::Unreadable(format!(
                    "the result is larger than {} MiB",
                    MAX_RESULT_BYTES / (1024 * 1024)
                )));
            }
            // A closed channel means the parser stopped: on an error, reported below, or
            // because nobody reads the result any more.
            if chunks.send(chunk).await.is_err() {
                break Ok(());
            }
        };
        drop(chunks);
        drop(response);
        let end = match (parser.await, download) {
            (Err(e), _) => Err(QueryError::Unreadable(format!(
                "the result parser failed: {e}"
            ))),
            (Ok(_), Err(e)) => Err(e),
            (Ok(Ok(None)), Ok(())) => return,
            (Ok(parsed), Ok(())) => finish(parsed, received),
        };
        let last = match end {
            Ok((rest, summary)) => {
                if pieces.send(ResultPiece::Tables(rest.into())).await.is_err() {
                    return;
                }
                ResultPiece::End(Ok(summary))
            }
            Err(e) => ResultPiece::End(Err(e)),
        };
        // A reader that left has nothing to be told.
        let _ = pieces.send(last).await;
    });
    stream
}

/// The end of a transcoded answer: its last table JSON and summary, or why it is no result.
fn finish(
    parsed: Result<Option<Transcoded>, TranscodeError>,
    received: usize,
) -> Result<(Vec<u8>, ResultSummary), QueryError> {
    if received == 0 {
        return Err(QueryError::Unreadable(
            "Log Analytics answered 200 with an empty body".into(),
        ));
    }
    let transcoded = parsed
        .map_err(|e| {
            QueryError::Unreadable(format!("Log Analytics' answer is not a query result: {e}"))
        })?
        .ok_or_else(|| QueryError::Unavailable("the query was abandoned".into()))?;
    if !transcoded.saw_tables {
        return Err(QueryError::Unreadable(
            "Log Analytics' answer has no tables".into(),
        ));
    }
    Ok((
        transcoded.tables_json,
        ResultSummary {
            row_count: transcoded.row_count,
            partial_error: transcoded.error,
            statistics: transcoded.statistics,
            truncated: transcoded.truncated,
            values_left_encoded: transcoded.values_left_encoded,
        },
    ))
}
