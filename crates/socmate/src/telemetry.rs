//! Structured logs on stderr; `RUST_LOG` picks the levels (default `info`).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // `try_init` fails only if a subscriber is already installed (tests), which is fine.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

tokio::task_local! {
    /// The `x-request-id` of the request this task is serving.
    static REQUEST_ID: String;
}

/// Makes the request id available to outbound calls made while serving the request, so one id
/// ties our log line, our response and the SIEM's own logs together.
pub async fn scope_request_id(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    // Only a GUID is passed on (SIEM request-id headers expect one); an arbitrary id a client sent
    // is kept out of outbound headers.
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| crate::siem::fields::is_guid(v))
        .map(str::to_owned);
    match id {
        Some(id) => REQUEST_ID.scope(id, next.run(request)).await,
        None => next.run(request).await,
    }
}

/// The longest `x-request-id` a caller may choose.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Drops a caller's `x-request-id` unless it is short and plain (letters, digits, `-._:`), so
/// that `SetRequestIdLayer` replaces it with a fresh UUID: a caller's id lands in the audit log
/// and every log line of the request, and an anonymous caller must not choose how large those
/// grow or put control characters in them.
pub fn keep_plain_request_id<B>(mut request: axum::http::Request<B>) -> axum::http::Request<B> {
    let plain = |v: &axum::http::HeaderValue| {
        let bytes = v.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID_LEN
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(b))
    };
    let headers = request.headers_mut();
    let ids = headers.get_all("x-request-id");
    let mut ids = ids.iter();
    let keep = ids.next().is_some_and(plain) && ids.next().is_none();
    if !keep {
        headers.remove("x-request-id");
    }
    request
}

/// The request id of the request being served by this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}
