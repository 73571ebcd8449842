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

/// One incident, ready to store.
#[derive(Debug, Clone)]
pub struct Incident {
    /// The SIEM's id, unique within the scope.
    pub external_id: String,
    /// Lower-camel status and severity as the SIEM sends them (filterable columns).
    pub status: Option<String>,
    pub severity: Option<String>,
    /// Orders versions: a stored incident is only replaced by the same or a newer one.
    pub last_update: DateTime<Utc>,
    pub created: Option<DateTime<Utc>>,
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

/// Which page of incidents to read.
#[derive(Debug, Clone)]
pub enum PageRequest {
    /// The first page of incidents updated at or after this RFC 3339 instant.
    First { updated_since: String },
    /// The page a previous page linked to (the connector's own opaque cursor).
    Next(String),
}

/// Incidents read in one step, and where to continue.
#[derive(Debug, Default)]
pub struct IncidentPage {
    pub incidents: Vec<Incident>,
    /// Records that could not be read as incidents, each with its reason.
    pub skipped: Vec<String>,
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

    /// How long the SIEM asked to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after } | Self::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Nanoseconds since the epoch: orders versions exactly (saturating far in the future).
pub fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}
