//! Local stand-in for the three Microsoft cloud APIs SoCMate talks to, speaking their real wire
//! formats (see `docs/azure/wire-formats.md` and `crates/azure-emulator/fixtures/`):
//!
//! 1. Entra ID v2 token endpoint, client credentials: `POST /{tenant}/oauth2/v2.0/token`
//! 2. Log Analytics query API: `POST|GET /v1/workspaces/{workspaceId}/query`, answering canned
//!    queries, `print`, `range` and the typed synthetic table `SyntheticRows` (large results are
//!    streamed; [`synthetic_rows_response`] gives the exact body for benchmarks), with semantic and
//!    syntax errors, partial results (`| partial`), `Prefer: wait` timeouts and timespan checks
//!    (details in the `log_analytics` module docs)
//! 3. Microsoft Graph security: `GET /v1.0/security/incidents[/{id}]`, `GET /v1.0/security/alerts_v2[/{id}]`
//!
//! All three are served on one port, so a client points its authority host, Log Analytics
//! endpoint and Graph endpoint at the same `http://127.0.0.1:PORT`. Tests can inject faults
//! (delay, hang, error status, throttling, malformed JSON), inspect a request log and change
//! tenants/apps/roles/data while the server runs, in process via [`RunningEmulator`] or out of
//! process via the `/_emulator/` control API of the `azure-emulator` binary. The log keeps the
//! Log Analytics `Prefer` header and body (never the token request body), and
//! [`RunningEmulator::max_concurrent`] reports the peak number of parallel requests per endpoint.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use azure_emulator::{EmulatorConfig, Endpoint, Fault, FaultKind, RunningEmulator};
//! let emu = RunningEmulator::start(EmulatorConfig::single_tenant(
//!     "72f988bf-86f1-41af-91ab-2d7cd011db47",
//!     "b1a3c5d7-0000-4000-8000-00000000a001",
//!     "secret",
//!     "c0ffee00-0000-4000-8000-00000000beef",
//! ))
//! .await?;
//! emu.inject(Fault::new(FaultKind::Status { status: 503 }).on(Endpoint::Token).times(1));
//! // ... point the client at emu.url() ...
//! assert_eq!(emu.request_count(Endpoint::Token), 0);
//! emu.shutdown().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
// Handlers return ready-made HTTP error responses as `Err`; boxing them would buy nothing.
#![allow(clippy::result_large_err)]

mod config;
mod control;
mod faults;
mod generate;
mod graph;
mod kql;
mod log_analytics;
mod server;
mod state;
mod synthetic;
pub mod tables;
mod timespan;
mod token;
mod util;

pub use config::{
    ALL_READ_ROLES, App, AppSecret, CannedQuery, EmulatorConfig, PreparedQuery, Tenant, Workspace,
};
pub use faults::{Endpoint, Fault, FaultKind};
pub use generate::{
    Estate, GENERATED_TENANT_ID, Onboarding, generate_incidents, generate_incidents_for,
    sentinel_estate, with_id_prefix, workspace_tables,
};
pub use server::RunningEmulator;
pub use state::RecordedRequest;
pub use synthetic::synthetic_rows_response;
