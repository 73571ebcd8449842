//! Incidents as every provider type hands them to the sync engine.
//!
//! A connector maps its SIEM's records into [`Incident`]s; the engine stores them idempotently
//! by `(scope, external_id)`, where the scope (from [`super::SiemConnector::incident_scope`]) names
//! the SIEM-side collection whose ids are unique — so two providers reading the same collection
//! store each incident once. An incident merged into another is reported with status
//! `redirected`; lists hide those unless asked for them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::BoxFuture;

/// One incident, ready to store.
#[derive(Debug, Clone)]
pub struct Incident {
    /// The SIEM's id, unique within the scope.
    pub external_id: String,
    /// Lower-camel status and severity as the SIEM sends them (filterable columns).
    pub status: Option<String>,
    pub severity: Option<String>,
    /// The title and the assignee as shown to analysts (searchable and filterable columns).
    pub title: Option<String>,
    pub owner: Option<String>,
    /// Orders versions: a stored incident is only replaced by the same or a newer one.
    pub last_update: DateTime<Utc>,
    pub created: Option<DateTime<Utc>>,
    /// The organisation it belongs to, where the SIEM has one (filterable).
    pub tenant_id: Option<String>,
    /// The products its alerts came from (filterable), e.g. `microsoftSentinel`.
    pub sources: Vec<String>,
    /// The incident as the API shows it: snake_case fields.
    pub data: Value,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone)]
pub struct Alert {
    pub external_id: String,
    pub last_update: DateTime<Utc>,
    pub data: Value,
}

/// What a sync run asks a connector to read: every incident updated in `[since, until)`, before
/// `deadline` (waits the SIEM asks for count against it).
#[derive(Debug, Clone, Copy)]
pub struct SyncWindow {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub deadline: tokio::time::Instant,
}

/// The SIEM-side collection a connection's incidents belong to. Incidents are stored once per
/// `(key, external id)`; `aliases` are keys the same collection was stored under before (e.g.
/// a tenant known by its domain until its id was learned), merged into `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentScope {
    pub key: String,
    pub aliases: Vec<String>,
}

/// Where a connector puts what it reads. The engine commits each batch in one transaction,
/// fenced by the run's lease; an error means the run must stop (lease lost, shutdown, store).
pub trait IncidentSink: Send {
    fn put(&mut self, batch: Vec<Incident>) -> BoxFuture<'_, Result<(), FetchError>>;
    /// A record that could not be read as an incident, and why.
    fn skip(&mut self, reason: String);
    /// How the read went where it matters to an admin (a fallback taken, a slice split).
    fn note(&mut self, note: String);
}

/// How a read ended: `incomplete` lists why some incidents of the window may be missing (empty:
/// every incident was read). An incomplete run never moves the watermark.
#[derive(Debug, Default)]
pub struct ReadReport {
    pub incomplete: Vec<String>,
}

/// Why incidents could not be read. "Could not read" is never "nothing new".
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
    /// The engine asked the read to stop (its lease was lost, the store failed, shutdown).
    #[error("stopped: {0}")]
    Stopped(String),
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
            Self::Stopped(_) => "stopped",
        }
    }

    /// How long the SIEM asked to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after } | Self::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The text value of a field of an incident's API shape (`display_name`, `assigned_to`), for the
/// columns a connector fills from what it already mapped.
pub fn text_field(data: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    data.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Nanoseconds since the epoch: orders versions exactly (saturating far in the future).
pub fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}
