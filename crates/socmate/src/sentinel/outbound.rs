//! Sending one request to Azure within a deadline, with at most one retry on the interactive
//! path, and reading Azure's error envelopes.

use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use tokio::time::Instant;

/// Why an outbound call produced no usable HTTP response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    #[error("no answer before the deadline")]
    Timeout,
    #[error("could not reach the endpoint: {0}")]
    Unreachable(String),
}

/// The longest `Retry-After` the interactive path is willing to wait before its one retry.
const MAX_INTERACTIVE_RETRY_WAIT: Duration = Duration::from_secs(2);

/// Sends the request built by `build`, retrying once on 429/5xx when the deadline allows.
pub async fn send_once_retrying(
    build: impl Fn() -> RequestBuilder,
    deadline: Instant,
) -> Result<Response, SendError> {
    let response = send(build(), deadline).await?;
    let status = response.status();
    if !(status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()) {
        return Ok(response);
    }
    let wait = retry_after(&response)
        .unwrap_or(Duration::from_millis(200))
        .min(MAX_INTERACTIVE_RETRY_WAIT);
    if Instant::now() + wait >= deadline {
        return Ok(response);
    }
    tokio::time::sleep(wait).await;
    send(build(), deadline).await
}

pub async fn send(request: RequestBuilder, deadline: Instant) -> Result<Response, SendError> {
    // Entra ID and Graph log `client-request-id`, Log Analytics `x-ms-client-request-id`.
    let request = match crate::telemetry::current_request_id() {
        Some(id) => request
            .header("client-request-id", &id)
            .header("x-ms-client-request-id", &id),
        None => request,
    };
    let host = request
        .try_clone()
        .and_then(|r| r.build().ok())
        .and_then(|r| r.url().host_str().map(str::to_owned))
        .unwrap_or_default();
    let started = Instant::now();
    let outcome = match tokio::time::timeout_at(deadline, request.send()).await {
        Err(_) => Err(SendError::Timeout),
        Ok(Err(e)) if e.is_timeout() => Err(SendError::Timeout),
        // reqwest's error text names the URL (hosts and ids, never secrets) and the cause.
        Ok(Err(e)) => Err(SendError::Unreachable(error_chain(&e))),
        Ok(Ok(response)) => Ok(response),
    };
    let label = match &outcome {
        Ok(r) => crate::metrics::status_class(r.status().as_u16()),
        Err(SendError::Timeout) => "timeout",
        Err(SendError::Unreachable(_)) => "unreachable",
    };
    crate::metrics::outbound(&host, label, started.elapsed().as_secs_f64());
    outcome
}

/// Reads a body of at most `limit` bytes before the deadline, without an intermediate copy.
pub async fn read_body_limited(
    mut response: Response,
    deadline: Instant,
    limit: usize,
) -> Result<Result<Vec<u8>, usize>, SendError> {
    let expected = response.content_length().unwrap_or(0);
    let mut body = Vec::with_capacity(usize::try_from(expected).unwrap_or(0).min(limit));
    loop {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Err(_) => return Err(SendError::Timeout),
            Ok(Err(e)) if e.is_timeout() => return Err(SendError::Timeout),
            Ok(Err(e)) => return Err(SendError::Unreachable(error_chain(&e))),
            Ok(Ok(None)) => return Ok(Ok(body)),
            Ok(Ok(Some(chunk))) => {
                if body.len() + chunk.len() > limit {
                    return Ok(Err(body.len() + chunk.len()));
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
}

/// Reads a whole body before the deadline.
pub async fn read_body(response: Response, deadline: Instant) -> Result<Vec<u8>, SendError> {
    match tokio::time::timeout_at(deadline, response.bytes()).await {
        Err(_) => Err(SendError::Timeout),
        Ok(Err(e)) if e.is_timeout() => Err(SendError::Timeout),
        Ok(Err(e)) => Err(SendError::Unreachable(error_chain(&e))),
        Ok(Ok(bytes)) => Ok(bytes.to_vec()),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `Retry-After` as seconds (fractions allowed, as Graph sends) or an HTTP date.
pub fn retry_after(response: &Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (when.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
}

/// Azure's OneAPI/Graph error envelope: `{"error": {"code", "message", "innererror"}}`.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorEnvelope {
    #[serde(default)]
    pub error: ErrorInfo,
}

#[derive(Debug, Default, Deserialize)]
pub struct ErrorInfo {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, alias = "innerError")]
    pub innererror: Option<Box<ErrorInfo>>,
    #[serde(default, rename = "correlationId")]
    pub correlation_id: Option<String>,
    #[serde(default, rename = "request-id")]
    pub request_id: Option<String>,
}

impl ErrorEnvelope {
    pub fn parse(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }

    /// Every `code` from the outer error inwards, e.g. `BadArgumentError > SemanticError`.
    pub fn codes(&self) -> Vec<&str> {
        let mut codes = Vec::new();
        let mut info = Some(&self.error);
        while let Some(current) = info {
            if !current.code.is_empty() {
                codes.push(current.code.as_str());
            }
            info = current.innererror.as_deref();
        }
        codes
    }

    /// Every `message` from the outer error inwards, joined with ` > `.
    pub fn message_chain(&self) -> String {
        let mut messages = Vec::new();
        let mut info = Some(&self.error);
        while let Some(current) = info {
            if !current.message.is_empty() {
                messages.push(current.message.as_str());
            }
            info = current.innererror.as_deref();
        }
        messages.join(" > ")
    }

    /// The correlation or request id Azure support asks for.
    pub fn trace_id(&self) -> Option<&str> {
        let inner = self.error.innererror.as_deref();
        self.error
            .correlation_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(inner.and_then(|i| i.request_id.as_deref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_retry_after(value: &str) -> Response {
        let response = axum::http::Response::builder()
            .status(429)
            .header("retry-after", value)
            .body(Vec::<u8>::new())
            .unwrap();
        Response::from(response)
    }

    #[test]
    fn retry_after_accepts_seconds_fractions_and_http_dates() {
        assert_eq!(
            retry_after(&with_retry_after("7")),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(&with_retry_after("2.128")),
            Some(Duration::from_millis(2128))
        );
        let in_a_minute = (chrono::Utc::now() + chrono::Duration::seconds(60)).to_rfc2822();
        let wait = retry_after(&with_retry_after(&in_a_minute)).unwrap();
        assert!(
            wait > Duration::from_secs(55) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
        for bad in ["soon", "-1", "NaN"] {
            assert_eq!(retry_after(&with_retry_after(bad)), None, "{bad}");
        }
    }

    #[test]
    fn error_envelopes_yield_their_code_and_message_chains() {
        let envelope = ErrorEnvelope::parse(
            br#"{"error":{"message":"The request had some invalid properties","code":"BadArgumentError",
            "innererror":{"code":"SemanticError","message":"A semantic error occurred.",
            "innererror":{"code":"SEM0100","message":"'take' operator: Failed to resolve table"}}}}"#,
        );
        assert_eq!(
            envelope.codes(),
            ["BadArgumentError", "SemanticError", "SEM0100"]
        );
        assert_eq!(
            envelope.message_chain(),
            "The request had some invalid properties > A semantic error occurred. > 'take' operator: Failed to resolve table"
        );
        assert!(ErrorEnvelope::parse(b"not json").codes().is_empty());
    }
}
