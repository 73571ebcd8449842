//! The baseline beside which `mgmt-load` measures the management API: axum's hello-world on the
//! same runtime (tokio, multi-threaded) and allocator as `socmate serve`, in its own process.
//! It listens on the address given as its only argument and answers `GET /` with a short text.

use anyhow::Context as _;
use axum::Router;
use axum::routing::get;

/// The allocator `socmate` runs on, so that the baseline differs from it only in what it does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .context("usage: hello-world <address:port>")?;
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let app = Router::new().route("/", get(|| async { "Hello, World!" }));
    axum::serve(listener, app).await?;
    Ok(())
}
