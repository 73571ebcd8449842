//! Microsoft Sentinel, the first provider type: Entra ID tokens, the Log Analytics query API and
//! the Graph security APIs, behind [`ProviderKind`] and [`SiemConnector`].
//!
//! The connection test proves each capability SoCMate needs separately — a token, a query on
//! the workspace (Data.Read + workspace RBAC), reading incidents (SecurityIncident.Read.All) and
//! alerts (SecurityAlert.Read.All) — so a failure names the step and the missing permission.
//! How the real services behave, with sources: `docs/azure/wire-formats.md` and
//! `docs/azure/real-behaviour.md`.

pub mod cloud;
pub mod connection;
mod diagnose;
mod graph;
mod incidents;
mod outbound;
mod query;
pub mod settings;
pub mod token;
mod transcode;
mod workspace;

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Map, Value};
use tokio::time::Instant;
use url::Url;
use utoipa::openapi::{RefOr, Schema};

use self::cloud::{AzureCloud, EndpointOverrides, Endpoints, join_segments};
use self::connection::{IncidentSource, SentinelConfig};
use self::diagnose::Diagnosis;
use self::outbound::{ErrorEnvelope, read_body, send_once_retrying};
use self::token::{Freshness, TokenCache, TokenError, TokenRequest};
use crate::siem::{
    BoxFuture, Check, CheckStatus, ConnectionReport, FetchError, Fields, IncidentScope,
    IncidentSink, ProviderForm, ProviderKind, QueryError, QueryRequest, ReadReport, ResultStream,
    SecretHelp, SiemConnector, SyncWindow,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A ceiling for any single outbound request; callers pass tighter deadlines.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(660);
/// A table-free probe: proves token, RBAC and workspace id without depending on any data.
const PROBE_QUERY: &str = "print ok=1";

pub const CHECK_TOKEN: &str = "token";
pub const CHECK_LOG_ANALYTICS: &str = "log_analytics";
pub const CHECK_INCIDENTS: &str = "incidents";
pub const CHECK_ALERTS: &str = "alerts";

/// The credentials and location of one Sentinel workspace.
pub struct SentinelCredentials {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub workspace_id: String,
    pub cloud: AzureCloud,
    pub incident_source: IncidentSource,
}

/// The Sentinel provider type: process-wide plumbing (one HTTP client, the endpoints, the token
/// cache) shared by every Sentinel connection.
#[derive(Clone)]
pub struct Sentinel {
    shared: Arc<Shared>,
}

struct Shared {
    http: reqwest::Client,
    overrides: EndpointOverrides,
    tokens: TokenCache,
    /// Per app registration (tenant, client): bounds its concurrent queries.
    query_slots:
        std::sync::Mutex<std::collections::HashMap<(String, String), Arc<tokio::sync::Semaphore>>>,
}

impl Sentinel {
    pub fn new(overrides: EndpointOverrides) -> Result<Self, reqwest::Error> {
        Ok(Self {
            shared: Arc::new(Shared::new(overrides)?),
        })
    }

    pub fn connect_with(&self, credentials: SentinelCredentials) -> SentinelConnection {
        SentinelConnection {
            endpoints: self.shared.overrides.resolve(credentials.cloud),
            sentinel: Arc::clone(&self.shared),
            credentials,
            tenant: std::sync::Mutex::default(),
        }
    }
}

impl ProviderKind for Sentinel {
    fn provider_type(&self) -> &'static str {
        connection::PROVIDER_TYPE
    }

    fn form(&self) -> ProviderForm {
        connection::form()
    }

    fn healthy_message(&self) -> &'static str {
        connection::MESSAGE_HEALTHY
    }

    fn secret_help(&self) -> SecretHelp {
        connection::SECRET_HELP
    }

    fn new_connection(&self, fields: &mut Fields) -> Option<Map<String, Value>> {
        connection::new_config(fields).map(|c| c.to_map())
    }

    fn changed_connection(
        &self,
        current: &Map<String, Value>,
        fields: &mut Fields,
    ) -> Option<Map<String, Value>> {
        let current = SentinelConfig::from_map(current).ok()?;
        connection::changed_config(&current, fields).map(|c| c.to_map())
    }

    fn connect(
        &self,
        connection: &Map<String, Value>,
        secret: SecretString,
    ) -> Result<Box<dyn SiemConnector>, String> {
        let config = SentinelConfig::from_map(connection)?;
        let connection = self.connect_with(SentinelCredentials {
            tenant_id: config.tenant_id,
            client_id: config.client_id,
            client_secret: secret,
            workspace_id: config.workspace_id,
            cloud: config.cloud,
            incident_source: config.incident_source,
        });
        *connection
            .tenant
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = config.resolved_tenant_id;
        Ok(Box::new(connection))
    }

    fn forget(&self, connection: &Map<String, Value>) {
        if let Ok(config) = SentinelConfig::from_map(connection) {
            self.shared
                .forget_credentials(&config.tenant_id, &config.client_id);
        }
    }

    fn describe(&self, connection: &Map<String, Value>) -> String {
        match SentinelConfig::from_map(connection) {
            Ok(c) => format!("tenant {}, workspace {}", c.tenant_id, c.workspace_id),
            Err(_) => "an unreadable Sentinel connection".to_owned(),
        }
    }

    fn connection_schemas(&self) -> (RefOr<Schema>, RefOr<Schema>) {
        use utoipa::PartialSchema as _;
        (
            connection::SentinelFields::schema(),
            connection::SentinelFieldChanges::schema(),
        )
    }
}

impl Shared {
    fn new(overrides: EndpointOverrides) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // A redirect could carry a bearer token or a secret to another host: never follow.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("socmate/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            overrides,
            tokens: TokenCache::default(),
            query_slots: std::sync::Mutex::default(),
        })
    }

    /// Forgets cached tokens of an app registration whose secret changed or was deleted.
    pub fn forget_credentials(&self, tenant_id: &str, client_id: &str) {
        self.tokens.forget(tenant_id, client_id);
    }

    fn query_slots(&self, tenant_id: &str, client_id: &str) -> Arc<tokio::sync::Semaphore> {
        let mut slots = self
            .query_slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(
            slots
                .entry((tenant_id.to_owned(), client_id.to_owned()))
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(query::QUERIES_PER_APP))),
        )
    }
}

pub struct SentinelConnection {
    sentinel: Arc<Shared>,
    credentials: SentinelCredentials,
    endpoints: Endpoints,
    /// The tenant's id (`tid`) once a token has named it.
    tenant: std::sync::Mutex<Option<String>>,
}

impl SiemConnector for SentinelConnection {
    fn test_connection(&self, budget: Duration) -> BoxFuture<'_, ConnectionReport> {
        Box::pin(self.run_connection_test(budget))
    }

    fn query(&self, request: QueryRequest) -> BoxFuture<'_, Result<ResultStream, QueryError>> {
        Box::pin(self.run_query(request))
    }

    fn incident_scope(&self) -> BoxFuture<'_, Result<IncidentScope, FetchError>> {
        Box::pin(self.resolve_scope())
    }

    fn read_incidents<'a>(
        &'a self,
        window: SyncWindow,
        sink: &'a mut dyn IncidentSink,
    ) -> BoxFuture<'a, Result<ReadReport, FetchError>> {
        match self.credentials.incident_source {
            IncidentSource::Graph => Box::pin(self.read_graph_incidents(window, sink)),
            IncidentSource::Workspace => Box::pin(self.read_workspace_incidents(window, sink)),
        }
    }

    fn learned(&self) -> Map<String, Value> {
        let mut facts = Map::new();
        if let Some(tenant) = self.known_tenant() {
            facts.insert("resolved_tenant_id".into(), Value::String(tenant));
        }
        facts
    }
}

/// How long resolving a scope may take (one token request).
const SCOPE_TIMEOUT: Duration = Duration::from_secs(30);

impl SentinelConnection {
    fn known_tenant(&self) -> Option<String> {
        self.tenant
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Graph: the tenant's Defender XDR feed, known by the tenant's id from its token (a tenant
    /// typed as a domain and as its GUID is one tenant, docs/azure/real-behaviour.md C9; the key
    /// it was stored under as typed is an alias). Workspace: the workspace's own tables. Either
    /// way a token is fetched first, so the tenant's id is known and bad credentials surface.
    async fn resolve_scope(&self) -> Result<IncidentScope, FetchError> {
        let deadline = Instant::now() + SCOPE_TIMEOUT;
        let scope = match self.credentials.incident_source {
            IncidentSource::Graph => &self.endpoints.graph_scope,
            IncidentSource::Workspace => &self.endpoints.log_analytics_scope,
        };
        self.token(scope, Freshness::Cached, deadline)
            .await
            .map_err(|e| self.fetch_token_error(&e))?;
        if self.credentials.incident_source == IncidentSource::Workspace {
            return Ok(IncidentScope {
                key: format!(
                    "log-analytics-workspace:{}",
                    self.credentials.workspace_id.to_ascii_lowercase()
                ),
                aliases: Vec::new(),
            });
        }
        let typed = self.credentials.tenant_id.to_ascii_lowercase();
        let tenant = self
            .known_tenant()
            .or_else(|| crate::siem::fields::is_guid(&typed).then(|| typed.clone()))
            .ok_or_else(|| {
                FetchError::Unreadable(
                    "Entra ID's token names no tenant id (tid), so the tenant cannot be told apart"
                        .into(),
                )
            })?;
        let key = format!("azure-tenant:{tenant}");
        let as_typed = format!("azure-tenant:{typed}");
        Ok(IncidentScope {
            aliases: if as_typed == key {
                vec![]
            } else {
                vec![as_typed]
            },
            key,
        })
    }

    async fn token(
        &self,
        scope: &str,
        freshness: Freshness,
        deadline: Instant,
    ) -> Result<SecretString, TokenError> {
        let request = TokenRequest {
            authority_host: &self.endpoints.authority_host,
            tenant_id: &self.credentials.tenant_id,
            client_id: &self.credentials.client_id,
            client_secret: &self.credentials.client_secret,
            scope,
        };
        let token = self
            .sentinel
            .tokens
            .token(&self.sentinel.http, &request, freshness, deadline)
            .await?;
        if let Some(tenant) = token::tenant_of(&token) {
            *self
                .tenant
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(tenant);
        }
        Ok(token)
    }

    async fn run_connection_test(&self, budget: Duration) -> ConnectionReport {
        let started = Instant::now();
        let deadline = started + budget;
        let budget_secs = budget.as_secs_f64();

        let la_token = self
            .token(
                &self.endpoints.log_analytics_scope,
                Freshness::Fresh,
                deadline,
            )
            .await;
        let token_check = match &la_token {
            Ok(_) => Check::passed(CHECK_TOKEN, started.elapsed()),
            Err(e) => {
                let d = diagnose::token_failure(
                    e,
                    &self.credentials.tenant_id,
                    &self.credentials.client_id,
                    host(&self.endpoints.authority_host),
                    budget_secs,
                );
                self.log_failure(CHECK_TOKEN, &d, e.aadsts(), e.correlation_id(), Some(e));
                Check::failed(CHECK_TOKEN, started.elapsed(), d.code, d.hint)
            }
        };
        let Ok(la_token) = la_token else {
            let because = "no token could be obtained";
            return ConnectionReport {
                checks: vec![
                    token_check,
                    Check::skipped(CHECK_LOG_ANALYTICS, because),
                    Check::skipped(CHECK_INCIDENTS, because),
                    Check::skipped(CHECK_ALERTS, because),
                ],
                latency: started.elapsed(),
            };
        };

        let (la_check, incident_checks) = tokio::join!(
            self.check_log_analytics(&la_token, deadline, budget_secs),
            self.check_incident_source(deadline, budget_secs),
        );
        let mut checks = vec![token_check, la_check];
        checks.extend(incident_checks);
        self.diagnose_fit(&mut checks, deadline).await;
        ConnectionReport {
            checks,
            latency: started.elapsed(),
        }
    }

    async fn check_log_analytics(
        &self,
        token: &SecretString,
        deadline: Instant,
        budget_secs: f64,
    ) -> Check {
        let started = Instant::now();
        let url = join_segments(
            &self.endpoints.log_analytics,
            &["v1", "workspaces", &self.credentials.workspace_id, "query"],
        );
        let wait = budget_secs.ceil().max(1.0);
        let body = serde_json::json!({"query": PROBE_QUERY, "timespan": "PT5M"});
        let outcome = send_once_retrying(
            || {
                self.sentinel
                    .http
                    .post(url.clone())
                    .bearer_auth(token.expose_secret())
                    .header("Prefer", format!("wait={wait}"))
                    .json(&body)
            },
            deadline,
        )
        .await;
        let response = match outcome {
            Ok(r) => r,
            Err(e) => {
                return self.send_failed(
                    CHECK_LOG_ANALYTICS,
                    started,
                    &e,
                    &self.endpoints.log_analytics,
                    budget_secs,
                );
            }
        };
        let status = response.status();
        let body = match read_body(response, deadline).await {
            Ok(b) => b,
            Err(e) => {
                return self.send_failed(
                    CHECK_LOG_ANALYTICS,
                    started,
                    &e,
                    &self.endpoints.log_analytics,
                    budget_secs,
                );
            }
        };
        let diagnosis = match status {
            // 204: a workspace without data still proves access.
            StatusCode::NO_CONTENT => return Check::passed(CHECK_LOG_ANALYTICS, started.elapsed()),
            StatusCode::OK => {
                // An empty or unreadable 200 is Log Analytics' answer to a malformed request.
                let readable = serde_json::from_slice::<serde_json::Value>(&body)
                    .is_ok_and(|v| v.get("tables").is_some_and(|t| t.is_array()));
                if readable {
                    return Check::passed(CHECK_LOG_ANALYTICS, started.elapsed());
                }
                (
                    diagnose::unexpected_body("Log Analytics"),
                    ErrorEnvelope::default(),
                )
            }
            _ => {
                let envelope = ErrorEnvelope::parse(&body);
                (
                    diagnose::log_analytics_failure(
                        status.as_u16(),
                        &envelope,
                        &self.credentials.workspace_id,
                    ),
                    envelope,
                )
            }
        };
        let (d, envelope) = diagnosis;
        self.log_upstream_failure(CHECK_LOG_ANALYTICS, &d, status, &envelope);
        Check::failed(CHECK_LOG_ANALYTICS, started.elapsed(), d.code, d.hint)
    }

    /// The incidents and alerts checks, against the provider's incident source.
    async fn check_incident_source(&self, deadline: Instant, budget_secs: f64) -> Vec<Check> {
        match self.credentials.incident_source {
            IncidentSource::Graph => self.check_graph(deadline, budget_secs).await,
            IncidentSource::Workspace => {
                let (incidents, alerts) = tokio::join!(
                    self.check_table(CHECK_INCIDENTS, "SecurityIncident", deadline),
                    self.check_table(CHECK_ALERTS, "SecurityAlert", deadline),
                );
                vec![incidents, alerts]
            }
        }
    }

    /// With the Graph source, once queries and Graph's incidents both work: does the workspace
    /// hold Sentinel incidents Graph does not list? Then the incidents check warns, with both
    /// fixes (no peer tells an admin this; they find out from missing incidents).
    async fn diagnose_fit(&self, checks: &mut [Check], deadline: Instant) {
        let passed = |name: &str| {
            checks
                .iter()
                .any(|c| c.name == name && c.status == CheckStatus::Passed)
        };
        if self.credentials.incident_source != IncidentSource::Graph
            || !passed(CHECK_LOG_ANALYTICS)
            || !passed(CHECK_INCIDENTS)
        {
            return;
        }
        let started = Instant::now();
        let Some(missing @ 1..) = self.incidents_missing_from_graph(deadline).await else {
            return;
        };
        if let Some(incidents) = checks.iter_mut().find(|c| c.name == CHECK_INCIDENTS) {
            let took = Duration::from_secs_f64(incidents.latency_ms / 1000.0) + started.elapsed();
            *incidents = Check::warning(
                CHECK_INCIDENTS,
                took,
                "incidents_not_in_graph",
                diagnose::incidents_not_in_graph(missing, &self.credentials.workspace_id),
            );
        }
    }

    /// A Sentinel table of the workspace can be read.
    async fn check_table(&self, check: &'static str, table: &str, deadline: Instant) -> Check {
        let started = Instant::now();
        match self.probe_table(table, deadline).await {
            Ok(()) => Check::passed(check, started.elapsed()),
            Err(FetchError::Denied { code, hint }) => {
                Check::failed(check, started.elapsed(), code, hint)
            }
            Err(e) => {
                tracing::warn!(check, error = %e, workspace_id = %self.credentials.workspace_id, "connection test: cannot read the workspace's Sentinel table");
                Check::failed(
                    check,
                    started.elapsed(),
                    e.code(),
                    format!("Reading the workspace's {table} table failed: {e}"),
                )
            }
        }
    }

    async fn check_graph(&self, deadline: Instant, budget_secs: f64) -> Vec<Check> {
        let started = Instant::now();
        let token = match self
            .token(&self.endpoints.graph_scope, Freshness::Fresh, deadline)
            .await
        {
            Ok(t) => t,
            Err(e) => {
                let d = diagnose::token_failure(
                    &e,
                    &self.credentials.tenant_id,
                    &self.credentials.client_id,
                    host(&self.endpoints.authority_host),
                    budget_secs,
                );
                self.log_failure(
                    CHECK_INCIDENTS,
                    &d,
                    e.aadsts(),
                    e.correlation_id(),
                    Some(&e),
                );
                return vec![
                    Check::failed(CHECK_INCIDENTS, started.elapsed(), d.code, d.hint),
                    Check::skipped(CHECK_ALERTS, "no Microsoft Graph token could be obtained"),
                ];
            }
        };
        let (incidents, alerts) = tokio::join!(
            self.probe_graph(
                CHECK_INCIDENTS,
                "incidents",
                "SecurityIncident.Read.All",
                &token,
                deadline,
                budget_secs
            ),
            self.probe_graph(
                CHECK_ALERTS,
                "alerts_v2",
                "SecurityAlert.Read.All",
                &token,
                deadline,
                budget_secs
            ),
        );
        vec![incidents, alerts]
    }

    async fn probe_graph(
        &self,
        check: &'static str,
        collection: &str,
        required_role: &str,
        token: &SecretString,
        deadline: Instant,
        budget_secs: f64,
    ) -> Check {
        let started = Instant::now();
        let url = join_segments(&self.endpoints.graph, &["v1.0", "security", collection]);
        let outcome = send_once_retrying(
            || {
                self.sentinel
                    .http
                    .get(url.clone())
                    .query(&[("$top", "1")])
                    .bearer_auth(token.expose_secret())
            },
            deadline,
        )
        .await;
        let response = match outcome {
            Ok(r) => r,
            Err(e) => {
                return self.send_failed(check, started, &e, &self.endpoints.graph, budget_secs);
            }
        };
        let status = response.status();
        let body = match read_body(response, deadline).await {
            Ok(b) => b,
            Err(e) => {
                return self.send_failed(check, started, &e, &self.endpoints.graph, budget_secs);
            }
        };
        if status == StatusCode::OK {
            let readable = serde_json::from_slice::<serde_json::Value>(&body)
                .is_ok_and(|v| v.get("value").is_some_and(|t| t.is_array()));
            if readable {
                return Check::passed(check, started.elapsed());
            }
            let d = diagnose::unexpected_body("Microsoft Graph");
            self.log_upstream_failure(check, &d, status, &ErrorEnvelope::default());
            return Check::failed(check, started.elapsed(), d.code, d.hint);
        }
        let envelope = ErrorEnvelope::parse(&body);
        let d = diagnose::graph_failure(status.as_u16(), &envelope, required_role);
        self.log_upstream_failure(check, &d, status, &envelope);
        Check::failed(check, started.elapsed(), d.code, d.hint)
    }

    fn send_failed(
        &self,
        check: &'static str,
        started: Instant,
        error: &outbound::SendError,
        endpoint: &Url,
        budget_secs: f64,
    ) -> Check {
        let d = diagnose::send_failure(error, host(endpoint), budget_secs);
        self.log_failure(check, &d, None, None, Some(error));
        Check::failed(check, started.elapsed(), d.code, d.hint)
    }

    fn log_upstream_failure(
        &self,
        check: &str,
        d: &Diagnosis,
        status: StatusCode,
        envelope: &ErrorEnvelope,
    ) {
        tracing::warn!(
            check,
            code = d.code,
            http_status = status.as_u16(),
            upstream_codes = %envelope.codes().join(" > "),
            correlation_id = envelope.trace_id().unwrap_or(""),
            tenant_id = %self.credentials.tenant_id,
            client_id = %self.credentials.client_id,
            workspace_id = %self.credentials.workspace_id,
            "Sentinel connection check failed"
        );
    }

    fn log_failure(
        &self,
        check: &str,
        d: &Diagnosis,
        aadsts: Option<u64>,
        correlation_id: Option<&str>,
        cause: Option<&dyn std::error::Error>,
    ) {
        tracing::warn!(
            check,
            code = d.code,
            aadsts = aadsts.map(|c| format!("AADSTS{c}")).unwrap_or_default(),
            correlation_id = correlation_id.unwrap_or(""),
            cause = cause.map(|c| c.to_string()).unwrap_or_default(),
            tenant_id = %self.credentials.tenant_id,
            client_id = %self.credentials.client_id,
            workspace_id = %self.credentials.workspace_id,
            "Sentinel connection check failed"
        );
    }
}

fn host(url: &Url) -> &str {
    url.host_str().unwrap_or("the Azure endpoint")
}
