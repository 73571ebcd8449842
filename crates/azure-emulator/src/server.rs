//! The HTTP server: one listener serving all three APIs (so a client can point its authority
//! host, Log Analytics endpoint and Graph endpoint at the same base URL), a middleware that
//! records every Azure request and applies injected faults, and [`RunningEmulator`], the handle
//! tests hold.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::EmulatorConfig;
use crate::faults::{self, Endpoint, Fault, FaultKind};
use crate::state::{RecordedRequest, Shared};
use crate::{control, graph, log_analytics, token, util};

/// How long [`RunningEmulator::shutdown`] waits for in-flight requests before aborting.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token::token))
        .route(
            "/v1/workspaces/{workspace}/query",
            post(log_analytics::query_post).get(log_analytics::query_get),
        )
        .route("/v1.0/security/incidents", get(graph::list_incidents))
        .route("/v1.0/security/incidents/{id}", get(graph::get_incident))
        .route("/v1.0/security/alerts_v2", get(graph::list_alerts))
        .route("/v1.0/security/alerts_v2/{id}", get(graph::get_alert))
        .merge(control::router())
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(shared.clone(), observe))
        .with_state(shared)
}

async fn fallback(uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if path.starts_with("/v1.0/") {
        graph::unknown_segment(path, &headers)
    } else if path.starts_with("/v1/") {
        util::json_response(
            StatusCode::NOT_FOUND,
            "application/json; charset=utf-8",
            &json!({"error": {"message": "The requested path does not exist", "code": "PathNotFoundError"}}),
        )
    } else {
        (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "azure-emulator: no such endpoint",
        )
            .into_response()
    }
}

fn shutting_down() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONNECTION, "close")],
        "azure-emulator is shutting down",
    )
        .into_response()
}

/// Removes the value of a `client_secret` parameter from a query string before it is stored.
fn redact_secret(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("client_secret") => format!("{k}=REDACTED"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Largest Log Analytics request body the middleware buffers (axum's default body limit).
const MAX_LA_BODY: usize = 2 * 1024 * 1024;

/// The `Prefer` header values of a request, joined with `,`.
fn prefer_header(headers: &HeaderMap) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// Records the request, applies the first matching fault, records the final status. The request
/// counts as in flight for [`RunningEmulator::max_concurrent`] from arrival until its response
/// is ready, including time spent in a `Delay` fault.
async fn observe(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path == "/_emulator" || path.starts_with("/_emulator/") {
        return next.run(req).await;
    }
    let endpoint = Endpoint::classify(&path);
    let _in_flight = endpoint.map(|e| shared.enter(e));
    let (tenant_raw, tenant_id) = match endpoint {
        Some(Endpoint::Token) => {
            let segment = path
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            let id = shared.with_config(|c| c.tenant(&segment).map(|t| t.id.clone()));
            (Some(segment), id)
        }
        Some(_) => {
            let id = shared.token_tenant(req.headers());
            (id.clone(), id)
        }
        None => (None, None),
    };
    let query = req.uri().query().map(|q| {
        if endpoint == Some(Endpoint::Token) {
            redact_secret(q)
        } else {
            q.to_owned()
        }
    });
    let method = req.method().to_string();
    let client_request_id = ["client-request-id", "x-ms-client-request-id"]
        .iter()
        .find_map(|name| req.headers().get(*name))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);

    // Log Analytics: keep the Prefer header and the body (never for the token endpoint, whose
    // body holds the client secret). The body is buffered and handed on unchanged.
    let is_la = endpoint == Some(Endpoint::LogAnalyticsQuery);
    let (req, prefer, body, body_too_large) = if is_la {
        let prefer = prefer_header(req.headers());
        let (parts, body) = req.into_parts();
        match axum::body::to_bytes(body, MAX_LA_BODY).await {
            Ok(bytes) => {
                let recorded =
                    (!bytes.is_empty()).then(|| String::from_utf8_lossy(&bytes).into_owned());
                (
                    Request::from_parts(parts, Body::from(bytes)),
                    prefer,
                    recorded,
                    false,
                )
            }
            Err(_) => (
                Request::from_parts(parts, Body::empty()),
                prefer,
                None,
                true,
            ),
        }
    } else {
        (req, None, None, false)
    };
    let server_timeout = is_la.then(|| log_analytics::server_timeout(req.headers()));

    let seq = shared.record_arrival(RecordedRequest {
        endpoint,
        method: method.clone(),
        path: path.clone(),
        query,
        tenant: tenant_id.clone().or_else(|| tenant_raw.clone()),
        status: 0,
        prefer,
        body,
        client_request_id,
    });

    let resp = if body_too_large {
        log_analytics::body_too_large(MAX_LA_BODY)
    } else {
        match shared.take_fault(endpoint, tenant_raw.as_deref(), tenant_id.as_deref()) {
            None => next.run(req).await,
            Some(FaultKind::Hang) => {
                tracing::info!(%method, %path, "fault: hanging request until shutdown");
                shared.shutdown.cancelled().await;
                // Status stays 0 in the log: the request was never answered by the emulated API.
                return shutting_down();
            }
            Some(FaultKind::Delay { ms }) => {
                let delay = Duration::from_millis(ms);
                match server_timeout {
                    // The query would outlast `Prefer: wait`: the gateway gives up at the timeout.
                    Some(timeout) if delay >= timeout => {
                        tokio::select! {
                            () = tokio::time::sleep(timeout) => log_analytics::gateway_timeout(),
                            () = shared.shutdown.cancelled() => shutting_down(),
                        }
                    }
                    _ => {
                        tokio::select! {
                            () = tokio::time::sleep(delay) => next.run(req).await,
                            () = shared.shutdown.cancelled() => shutting_down(),
                        }
                    }
                }
            }
            Some(FaultKind::BreakOff { after_bytes }) => {
                faults::break_off(next.run(req).await, after_bytes).await
            }
            Some(kind) => faults::fault_response(&kind, endpoint, req.headers(), &shared.base_url),
        }
    };
    let status = resp.status().as_u16();
    shared.record_status(seq, status);
    tracing::info!(
        %method,
        %path,
        status,
        endpoint = endpoint.map_or("-", Endpoint::as_str),
        "request"
    );
    resp
}

/// A running emulator bound to a local port. Dropping it stops the server.
pub struct RunningEmulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl RunningEmulator {
    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn start(config: EmulatorConfig) -> std::io::Result<RunningEmulator> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        Self::start_on(config, listener).await
    }

    /// Starts serving on an already bound listener.
    pub async fn start_on(
        config: EmulatorConfig,
        listener: TcpListener,
    ) -> std::io::Result<RunningEmulator> {
        let mut addr = listener.local_addr()?;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        let shared = Arc::new(Shared::new(config, format!("http://{addr}")));
        let app = router(shared.clone());
        let cancel = shared.shutdown.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(cancel.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "azure-emulator server stopped with an error");
            }
        });
        Ok(RunningEmulator {
            shared,
            addr,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash): the authority host, Log Analytics endpoint
    /// and Graph endpoint at once.
    pub fn url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds a fault after the existing ones.
    pub fn inject(&self, fault: Fault) {
        self.shared.inject(fault);
    }

    /// Removes all faults.
    pub fn clear_faults(&self) {
        self.shared.clear_faults();
    }

    /// Active faults, in evaluation order (with their remaining `times`).
    pub fn faults(&self) -> Vec<Fault> {
        self.shared.faults()
    }

    /// Number of requests received for `endpoint` (including faulted ones).
    pub fn request_count(&self, endpoint: Endpoint) -> usize {
        self.shared.request_count(endpoint)
    }

    /// The request log, oldest first (the most recent 10 000 requests).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// Empties the request log and resets the counts (and the [`Self::max_concurrent`] maxima,
    /// to the number of requests in flight).
    pub fn clear_requests(&self) {
        self.shared.clear_requests();
    }

    /// The highest number of requests to `endpoint` that were in flight at the same time
    /// (from arrival until the response was ready, including injected delays), e.g. to prove a
    /// client caps its concurrent queries.
    pub fn max_concurrent(&self, endpoint: Endpoint) -> usize {
        self.shared.max_concurrent(endpoint)
    }

    /// Changes the configuration in place; affects subsequent requests (RBAC, secrets, incidents
    /// are read live), but an app's roles only reach tokens issued afterwards.
    pub fn update(&self, f: impl FnOnce(&mut EmulatorConfig)) {
        self.shared.update_config(f);
    }

    /// A snapshot of the current configuration.
    pub fn config(&self) -> EmulatorConfig {
        self.shared.with_config(Clone::clone)
    }

    /// The audiences (resources) of the tokens issued so far, sorted, without repeats.
    pub fn token_audiences(&self) -> Vec<String> {
        self.shared.token_audiences()
    }

    /// Makes every access token issued so far unknown, though not expired (a key rollover).
    pub fn revoke_tokens(&self) {
        self.shared.revoke_tokens();
    }

    /// Makes every access token issued so far expired.
    pub fn expire_tokens(&self) {
        self.shared.expire_tokens();
    }

    /// Stops accepting, releases hung/delayed requests (503) and waits for the server to stop.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.cancel();
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for RunningEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningEmulator")
            .field("url", &self.shared.base_url)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::redact_secret;

    #[test]
    fn redacts_secret_in_query() {
        assert_eq!(
            redact_secret("a=1&client_secret=s3cr3t&b=2"),
            "a=1&client_secret=REDACTED&b=2"
        );
    }
}
