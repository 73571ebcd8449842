//! What every SIEM provider type offers SoCMate, and the connection report it returns.
//!
//! Sentinel is the first implementation; a second provider type (Splunk, Elastic, Chronicle)
//! implements [`SiemConnector`] and adds its variant to [`crate::providers::ProviderType`].

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;

mod query;

pub use query::{QueryError, QueryRequest, QueryResult};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One provider connection, ready to talk to its SIEM.
pub trait SiemConnector: Send + Sync {
    /// Runs every diagnostic step within `budget` and reports each one.
    fn test_connection(&self, budget: Duration) -> BoxFuture<'_, ConnectionReport>;

    /// Runs an analyst's query.
    fn query(&self, request: QueryRequest) -> BoxFuture<'_, Result<QueryResult, QueryError>>;

    /// Reads one page of incidents (with their alerts) updated since a point in time.
    fn incident_page(
        &self,
        request: PageRequest,
        deadline: tokio::time::Instant,
    ) -> BoxFuture<'_, Result<IncidentPage, FetchError>>;

    /// The tenant whose incidents this connection reads (incidents are stored once per tenant).
    fn tenant_id(&self) -> &str;
}

/// Which page of incidents to read.
#[derive(Debug, Clone)]
pub enum PageRequest {
    /// The first page of incidents updated at or after this RFC 3339 instant.
    First { updated_since: String },
    /// The page a previous page linked to.
    Next(String),
}

/// Incidents in the SIEM's own JSON shape, and the link to the next page if any.
#[derive(Debug)]
pub struct IncidentPage {
    pub incidents: Vec<serde_json::Value>,
    pub next: Option<String>,
}

/// Why a page of incidents could not be read. "Could not read" is never "nothing new".
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("throttled")]
    Throttled { retry_after: Option<Duration> },
    #[error("HTTP {status}")]
    Server {
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("{code}: {hint}")]
    Denied { code: &'static str, hint: String },
    #[error("no answer in time")]
    Timeout,
    #[error("unreachable: {0}")]
    Unavailable(String),
    #[error("unreadable answer: {0}")]
    Unreadable(String),
}

impl FetchError {
    /// Worth retrying within the same run.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Throttled { .. } | Self::Server { .. } | Self::Timeout | Self::Unavailable(_)
        )
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Throttled { .. } => "upstream_throttled",
            Self::Server { .. } => "upstream_unavailable",
            Self::Denied { code, .. } => code,
            Self::Timeout => "upstream_timeout",
            Self::Unavailable(_) => "upstream_unreachable",
            Self::Unreadable(_) => "upstream_unreadable",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Passed,
    Failed,
    Skipped,
}

/// The outcome of one diagnostic step. Failures carry a stable `code` and a `hint` that tells an
/// admin what to change; neither ever contains a secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Check {
    /// `token`, `log_analytics`, `incidents` or `alerts`.
    pub name: &'static str,
    pub status: CheckStatus,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Check {
    pub fn passed(name: &'static str, took: Duration) -> Self {
        Self {
            name,
            status: CheckStatus::Passed,
            latency_ms: millis(took),
            code: None,
            hint: None,
        }
    }

    pub fn failed(name: &'static str, took: Duration, code: &'static str, hint: String) -> Self {
        Self {
            name,
            status: CheckStatus::Failed,
            latency_ms: millis(took),
            code: Some(code),
            hint: Some(hint),
        }
    }

    pub fn skipped(name: &'static str, because: &str) -> Self {
        Self {
            name,
            status: CheckStatus::Skipped,
            latency_ms: 0.0,
            code: None,
            hint: Some(format!("not run: {because}")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConnectionReport {
    pub checks: Vec<Check>,
    pub latency: Duration,
}

impl ConnectionReport {
    pub fn healthy(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.status == CheckStatus::Passed)
    }
}

/// Milliseconds with one decimal, as the seed's `latency_ms` examples show.
pub fn millis(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 10_000.0).round() / 10.0
}
