//! The seam between SoCMate's core and the SIEM products it connects to.
//!
//! A provider type implements [`ProviderKind`] — its connection
//! fields, their validation and form, its messages, how to connect — and the connections it makes
//! implement [`SiemConnector`]: the connection test, queries and incident pages. The core
//! (provider management, queries, incident sync, the console) only ever talks to these traits, and
//! [`crate::provider_types`] is the one place that registers the types a build supports.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use secrecy::SecretString;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::openapi::{RefOr, Schema};

pub mod fields;
pub mod incidents;
mod query;
mod registry;
pub mod retry;

pub use fields::Fields;
pub use incidents::{
    Alert, FetchError, Incident, IncidentScope, IncidentSink, ReadReport, SyncWindow, text_field,
};
pub use query::{
    MAX_VALUE_DEPTH, QueryError, QueryRequest, QueryResult, ResultPiece, ResultStream,
    ResultSummary,
};
pub use registry::Registry;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A provider type: what a provider of this type stores, how it is validated and shown, and how
/// to connect with it. The stored connection is this type's own JSON object (its fields as the
/// API shows them); the secret is kept apart by the core, encrypted.
pub trait ProviderKind: Send + Sync {
    /// The `provider_type` value, lower case.
    fn provider_type(&self) -> &'static str;

    /// The console's description of the create/edit form.
    fn form(&self) -> ProviderForm;

    /// The message of a connection test that passed every check.
    fn healthy_message(&self) -> &'static str;

    /// Where an admin finds the secret and creates a new one, for messages about it.
    fn secret_help(&self) -> SecretHelp;

    /// Takes this type's connection fields from a create or test body (each one required or
    /// defaulted) and returns the connection to store. Problems go into `fields`.
    fn new_connection(&self, fields: &mut Fields) -> Option<Map<String, Value>>;

    /// Takes the fields a PATCH changes and returns the whole new connection, or `None` when the
    /// body changes none of them. Problems go into `fields`.
    fn changed_connection(
        &self,
        current: &Map<String, Value>,
        fields: &mut Fields,
    ) -> Option<Map<String, Value>>;

    /// A ready connection. Fails only when the stored connection is not this type's.
    fn connect(
        &self,
        connection: &Map<String, Value>,
        secret: SecretString,
    ) -> Result<Box<dyn SiemConnector>, String>;

    /// Drops whatever is cached for this connection (tokens), after its credentials changed or
    /// the provider was deleted.
    fn forget(&self, connection: &Map<String, Value>);

    /// A short description of where a connection points, for the audit log (never a secret).
    fn describe(&self, connection: &Map<String, Value>) -> String;

    /// The OpenAPI schemas (objects) of this type's connection fields: `(create, update)`.
    fn connection_schemas(&self) -> (RefOr<Schema>, RefOr<Schema>);
}

/// Where to find a provider type's secret, and how to replace it.
#[derive(Debug, Clone, Copy)]
pub struct SecretHelp {
    /// Where the secret's value is shown, e.g. "Azure Portal > … > Certificates & secrets".
    pub location: &'static str,
    /// Where its expiry date is shown.
    pub expiry_location: &'static str,
    /// What to do when it expires.
    pub renewal: &'static str,
}

/// A provider type's form, as the console renders it (`GET /api/admin/siem-providers/types`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProviderForm {
    pub provider_type: &'static str,
    /// The product's name, as the console shows it.
    pub label: &'static str,
    /// An example provider name.
    pub name_placeholder: &'static str,
    /// What the admin prepares on the SIEM's side before filling in the form.
    pub intro: &'static str,
    /// The connection fields in form order; the secret is always the last field.
    pub fields: Vec<FormField>,
    /// The checks of a connection test, in the order they run, with their labels.
    pub checks: Vec<FormCheck>,
    /// How the query page presents this type's queries.
    pub query: QueryHelp,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueryHelp {
    /// The query language's name, e.g. "KQL".
    pub language: &'static str,
    /// A query that works on any connection of this type.
    pub example: &'static str,
    /// What a query runs on, and how the time range applies.
    pub hint: &'static str,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FormField {
    /// The API field.
    pub name: &'static str,
    pub label: &'static str,
    /// Where to find the value.
    pub help: &'static str,
    pub required: bool,
    /// `text`, `secret` or `select`.
    pub input: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<&'static str>,
    /// An HTML `pattern` the value must match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<&'static str>,
    /// The choices of a `select`, the first being the default.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<FormOption>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FormOption {
    pub value: &'static str,
    pub label: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FormCheck {
    pub name: &'static str,
    pub label: &'static str,
}

/// One provider connection, ready to talk to its SIEM.
pub trait SiemConnector: Send + Sync {
    /// Runs every diagnostic step within `budget` and reports each one.
    fn test_connection(&self, budget: Duration) -> BoxFuture<'_, ConnectionReport>;

    /// Runs an analyst's query. `Err` when the SIEM refused it outright; once it answers, the
    /// result comes as a stream (a provider without one wraps its whole result:
    /// [`ResultStream::whole`]).
    fn query(&self, request: QueryRequest) -> BoxFuture<'_, Result<ResultStream, QueryError>>;

    /// The collection this connection's incidents belong to (it may have to ask the SIEM, e.g.
    /// for the tenant's id).
    fn incident_scope(&self) -> BoxFuture<'_, Result<IncidentScope, FetchError>>;

    /// Reads every incident (with its alerts) of `window` into `sink`, batch by batch, retrying
    /// what is worth retrying (see [`retry`]), and says whether it saw them all.
    fn read_incidents<'a>(
        &'a self,
        window: SyncWindow,
        sink: &'a mut dyn IncidentSink,
    ) -> BoxFuture<'a, Result<ReadReport, FetchError>>;

    /// Connection facts learned while talking to the SIEM (e.g. the tenant id behind a typed
    /// domain), stored with the provider's connection and shown beside what was typed.
    fn learned(&self) -> Map<String, Value> {
        Map::new()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Passed,
    Failed,
    /// Not run because an earlier step failed.
    Skipped,
    /// It works, but something the admin should know limits it (the hint says what).
    Warning,
}

/// The outcome of one diagnostic step. Failures carry a stable `code` and a `hint` that tells an
/// admin what to change; neither ever contains a secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Check {
    /// The step, as the provider type names it (its form lists them).
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

    pub fn warning(name: &'static str, took: Duration, code: &'static str, hint: String) -> Self {
        Self {
            status: CheckStatus::Warning,
            ..Self::failed(name, took, code, hint)
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
    /// Healthy when something passed and nothing failed or was skipped (warnings do not count
    /// against it).
    pub fn healthy(&self) -> bool {
        self.checks.iter().any(|c| c.status == CheckStatus::Passed)
            && self
                .checks
                .iter()
                .all(|c| matches!(c.status, CheckStatus::Passed | CheckStatus::Warning))
    }
}

/// Milliseconds with one decimal, as the seed's `latency_ms` examples show.
pub fn millis(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 10_000.0).round() / 10.0
}
