//! The HTTP/1.1 server loop, with the limits `axum::serve` does not set: nothing a client
//! sends, or fails to send, holds the server.
//!
//! - **Header timeout**: a request's headers must arrive within `header_timeout`. hyper starts
//!   this timer whenever it waits for a request, so it also closes a kept-alive connection that
//!   sends nothing for that long (the idle timeout).
//! - **Body timeout**: each wait for the next part of a request body is bounded by
//!   `body_timeout`; a stalled upload ends in an error answer.
//! - **Connection cap**: at most `max_connections` connections are served normally. Beyond it
//!   a connection is still accepted, but only into a small overflow pool that answers
//!   `/healthz` and `/readyz` as usual and everything else with a fast 503 and closes; past the
//!   overflow pool it is closed at once. So a flood of slow connections neither starves the
//!   health probes nor exhausts file descriptors.
//! - **Shutdown window**: on shutdown the listener closes, connections finish the request in
//!   hand and close, and whatever still runs after `shutdown_grace` is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

/// The limits every connection is served under.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
}

/// Connections past the cap that still get an answer (health probes, a fast 503).
const OVERFLOW_CONNECTIONS: usize = 64;
/// How long an overflow connection may take to send its request.
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves `router` on `listener` until `shutdown`, then drains within the grace window.
/// `overflow` answers the connections past the cap.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    overflow: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let normal = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let spare = Arc::new(Semaphore::new(OVERFLOW_CONNECTIONS));
    let connections = TaskTracker::new();
    // `closing`: finish the request in hand, then close; `abandon`: the window is over.
    let closing = CancellationToken::new();
    let abandon = CancellationToken::new();
    loop {
        let (stream, remote) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was accepted: wait a
                    // moment rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (permit, service, header_timeout, keep_alive) =
            if let Ok(permit) = normal.clone().try_acquire_owned() {
                (permit, router.clone(), limits.header_timeout, true)
            } else if let Ok(permit) = spare.clone().try_acquire_owned() {
                metrics::counter!("socmate_http_connections_over_cap_total").increment(1);
                (permit, overflow.clone(), OVERFLOW_HEADER_TIMEOUT, false)
            } else {
                metrics::counter!("socmate_http_connections_refused_total").increment(1);
                drop(stream);
                continue;
            };
        let body_timeout = limits.body_timeout;
        let (closing, abandon) = (closing.clone(), abandon.clone());
        connections.spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
                let mut request = request.map(|body| {
                    axum::body::Body::new(tower_http::timeout::TimeoutBody::new(body_timeout, body))
                });
                request.extensions_mut().insert(ConnectInfo(remote));
                service.clone().oneshot(request)
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(keep_alive);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => return log_end(result, remote),
                () = closing.cancelled() => connection.as_mut().graceful_shutdown(),
            }
            tokio::select! {
                result = connection => log_end(result, remote),
                () = abandon.cancelled() => {}
            }
        });
    }
    drop(listener);
    closing.cancel();
    connections.close();
    if tokio::time::timeout(limits.shutdown_grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_s = limits.shutdown_grace.as_secs_f64(),
            "connections still open after the shutdown window; closing them"
        );
        abandon.cancel();
        connections.wait().await;
    }
}

fn log_end(result: Result<(), hyper::Error>, remote: SocketAddr) {
    if let Err(e) = result {
        // Timeouts and resets are the client's doing; worth a trace, not a warning.
        tracing::debug!(error = %e, client = %remote, "connection ended");
    }
}
