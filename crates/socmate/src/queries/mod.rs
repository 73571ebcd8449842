//! Analysts' queries through SIEM providers, and the audit trail of every query.
//!
//! A query runs on the provider the caller names, else on the current default; investigations
//! pass the provider they pinned. Whatever happens, one audit row records who ran what where.
//! Analysts keep queries to run again as saved queries, their own or shared.

mod audit;
mod export;
mod routes;
mod saved;
mod service;

pub use audit::{AuditEntry, AuditScope, list as audit_list};
pub use routes::router;
pub(crate) use routes::{QueryResultBody, TAG};
pub use service::{ProviderChoice, Queries, QueryInput, QueryResponse, QueryServiceError};
