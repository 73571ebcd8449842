//! Prometheus metrics: HTTP requests by route and status with latency histograms, outbound calls
//! by upstream host and outcome, sync runs and query outcomes. Served at `/metrics`.
//!
//! Labels are route templates, hosts and outcome codes — never ids from request input, so the
//! number of series stays bounded.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::store::Db;

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide recorder, installed on first use (one per process, shared by every server
/// a test process starts).
pub fn handle() -> Option<&'static PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// `GET /metrics`. Gauges that describe stored state (secret expiry) are read from the
/// database at scrape time, so every replica reports the same values.
pub async fn render(State(db): State<Db>) -> Response {
    match crate::providers::store::secret_expiries(&db).await {
        Ok(expiries) => {
            let now = chrono::Utc::now();
            for (provider_id, expires_at) in expiries {
                // Negative once expired; alert on `< 30 * 86400`.
                let left = (expires_at - now).as_seconds_f64();
                metrics::gauge!("socmate_provider_secret_expires_in_seconds", "provider_id" => provider_id)
                    .set(left);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read secret expiry dates for /metrics"),
    }
    match handle() {
        Some(h) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            h.render(),
        )
            .into_response(),
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// Counts every request by method, route template and status, and times it.
pub async fn track_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("socmate_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("socmate_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// One outbound call to a SIEM: `outcome` is the HTTP status class or `timeout`/`unreachable`.
pub fn outbound(host: &str, outcome: &'static str, seconds: f64) {
    metrics::counter!("socmate_outbound_requests_total", "host" => host.to_owned(), "outcome" => outcome).increment(1);
    metrics::histogram!("socmate_outbound_request_duration_seconds", "host" => host.to_owned())
        .record(seconds);
}

pub fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        429 => "429",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
