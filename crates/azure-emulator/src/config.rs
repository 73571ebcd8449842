//! What the emulated cloud contains: tenants, app registrations (secrets, granted application
//! roles, workspace RBAC), Log Analytics workspaces with canned query results, and Graph
//! security incidents/alerts. Tests build it in code; the binary loads it from a JSON file.
//!
//! JSON field names are the Rust field names (snake_case); incidents and alerts are stored as the
//! raw Graph objects (camelCase) so that fixtures can be pasted in unchanged.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Application roles granted by [`EmulatorConfig::single_tenant`].
pub const ALL_READ_ROLES: [&str; 3] = [
    "Data.Read",
    "SecurityIncident.Read.All",
    "SecurityAlert.Read.All",
];

/// The whole emulated cloud.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmulatorConfig {
    /// Known Entra tenants; a token request for any other tenant fails with AADSTS90002.
    pub tenants: Vec<Tenant>,
    /// `expires_in` / `ext_expires_in` of issued tokens, and how long the emulator accepts them.
    pub token_lifetime_secs: u64,
    /// The deepest `$skip` a Graph security listing serves an `@odata.nextLink` to: Graph's
    /// security API documents a `$skip` limit of 500 (microsoft-graph-docs
    /// `security-error-codes.md`, "Constraints"), and a listing was seen to stop returning
    /// `@odata.nextLink` past an offset (elastic/integrations#20234). `None`: no limit.
    pub graph_max_skip: Option<u64>,
    /// With `$expand=alerts`, an answer holding an incident with more alerts than this fails
    /// with HTTP 500, as it did every time on a ~45k-user tenant (elastic/integrations#18144).
    /// `None` (the default): every expansion succeeds.
    pub graph_expand_alert_limit: Option<usize>,
    /// The origin Graph writes into `@odata.nextLink`, when not the one the request came to.
    /// Graph itself always links to its own origin; this models a page rewritten on its way (a
    /// TLS-intercepting proxy, a compromised upstream), which a client must not follow — for
    /// instance one carrying `user:password@`. `None` (the default): the request's own origin.
    pub graph_next_link_base: Option<String>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            tenants: Vec::new(),
            token_lifetime_secs: 3599,
            graph_max_skip: Some(500),
            graph_expand_alert_limit: None,
            graph_next_link_base: None,
        }
    }
}

/// One Entra tenant with its app registrations, Log Analytics workspaces and Defender data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tenant {
    /// Tenant GUID.
    pub id: String,
    /// Verified domains (e.g. `contoso.onmicrosoft.com`); the token URL accepts these too.
    pub domains: Vec<String>,
    /// App registrations (service principals) of this tenant.
    pub apps: Vec<App>,
    /// Log Analytics workspaces of this tenant.
    pub workspaces: Vec<Workspace>,
    /// Graph `microsoft.graph.security.incident` objects. An incident may carry its own
    /// `alerts` array; otherwise `$expand=alerts` uses [`Tenant::alerts`] with a matching
    /// `incidentId`.
    pub incidents: Vec<Value>,
    /// Graph `microsoft.graph.security.alert` (alerts_v2) objects.
    pub alerts: Vec<Value>,
}

/// An app registration that authenticates with a client secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct App {
    /// Application (client) id GUID.
    pub client_id: String,
    /// Client secrets; a request matching only expired ones fails with AADSTS7000222.
    pub secrets: Vec<AppSecret>,
    /// Granted and consented application roles, e.g. `SecurityIncident.Read.All`. Written into
    /// each token when it is issued, so changing them affects only tokens issued afterwards.
    pub roles: Vec<String>,
    /// Workspace ids on which the app holds a reader RBAC role (checked at use time, as Azure
    /// RBAC is).
    pub workspaces: Vec<String>,
}

/// A client secret value.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppSecret {
    pub value: String,
    pub expired: bool,
}

impl std::fmt::Debug for AppSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSecret")
            .field("value", &"<redacted>")
            .field("expired", &self.expired)
            .finish()
    }
}

/// A Log Analytics workspace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Workspace {
    /// Workspace (customer) id GUID, the `{workspaceId}` of the query URL.
    pub id: String,
    /// Queries answered with a fixed body.
    pub canned: Vec<CannedQuery>,
    /// Microsoft Sentinel is enabled on it: only then do its `SecurityIncident` and
    /// `SecurityAlert` tables exist (a query naming them elsewhere fails to resolve the table).
    pub sentinel: bool,
    /// Rows of the workspace's `SecurityIncident` table (one per change of an incident), as JSON
    /// objects of its columns (see [`crate::tables::SECURITY_INCIDENT`]).
    pub security_incidents: Vec<Value>,
    /// Rows of its `SecurityAlert` table (see [`crate::tables::SECURITY_ALERT`]).
    pub security_alerts: Vec<Value>,
    /// Queries answered with a body serialised before the request, sent as it is: for benchmarks
    /// that must measure the client, not the emulator's JSON writer. Set in code only (not part
    /// of the JSON config), checked before [`Self::canned`].
    #[serde(skip)]
    pub prepared: Vec<PreparedQuery>,
}

/// A query text (compared after trimming) and the bytes of the 200 response body sent for it.
#[derive(Clone, Default, PartialEq)]
pub struct PreparedQuery {
    pub query: String,
    pub body: axum::body::Bytes,
}

impl std::fmt::Debug for PreparedQuery {
    /// The body is often hundreds of MB: its length, not its bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedQuery")
            .field("query", &self.query)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// A query text (compared after trimming) and the full 200 response body returned for it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CannedQuery {
    pub query: String,
    pub response: Value,
}

impl EmulatorConfig {
    /// One tenant with one app holding `Data.Read`, `SecurityIncident.Read.All` and
    /// `SecurityAlert.Read.All`, Reader on one (empty) workspace, and no incidents.
    pub fn single_tenant(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        secret: impl Into<String>,
        workspace_id: impl Into<String>,
    ) -> Self {
        let workspace_id = workspace_id.into();
        Self {
            tenants: vec![Tenant {
                id: tenant_id.into(),
                domains: Vec::new(),
                apps: vec![App {
                    client_id: client_id.into(),
                    secrets: vec![AppSecret::new(secret)],
                    roles: ALL_READ_ROLES.iter().map(|r| (*r).to_owned()).collect(),
                    workspaces: vec![workspace_id.clone()],
                }],
                workspaces: vec![Workspace::new(workspace_id)],
                incidents: Vec::new(),
                alerts: Vec::new(),
            }],
            ..Self::default()
        }
    }

    /// Parses a JSON configuration.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Reads and parses a JSON configuration file.
    pub fn from_file(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Self::from_json(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// The tenant whose id or one of whose domains equals `name` (case-insensitive).
    pub fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.matches(name))
    }

    /// Mutable variant of [`EmulatorConfig::tenant`].
    pub fn tenant_mut(&mut self, name: &str) -> Option<&mut Tenant> {
        self.tenants.iter_mut().find(|t| t.matches(name))
    }
}

impl Tenant {
    /// A tenant with no domains, apps, workspaces or data.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            ..Self::default()
        }
    }

    /// Whether `name` is this tenant's id or one of its domains (case-insensitive).
    pub fn matches(&self, name: &str) -> bool {
        self.id.eq_ignore_ascii_case(name)
            || self.domains.iter().any(|d| d.eq_ignore_ascii_case(name))
    }

    /// The app registration with this client id (case-insensitive).
    pub fn app(&self, client_id: &str) -> Option<&App> {
        self.apps
            .iter()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }

    /// Mutable variant of [`Tenant::app`].
    pub fn app_mut(&mut self, client_id: &str) -> Option<&mut App> {
        self.apps
            .iter_mut()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }

    /// The workspace with this id (case-insensitive).
    pub fn workspace(&self, id: &str) -> Option<&Workspace> {
        self.workspaces
            .iter()
            .find(|w| w.id.eq_ignore_ascii_case(id))
    }

    /// Mutable variant of [`Tenant::workspace`].
    pub fn workspace_mut(&mut self, id: &str) -> Option<&mut Workspace> {
        self.workspaces
            .iter_mut()
            .find(|w| w.id.eq_ignore_ascii_case(id))
    }
}

impl App {
    /// An app with one valid secret, no roles and no workspace access.
    pub fn new(client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            secrets: vec![AppSecret::new(secret)],
            roles: Vec::new(),
            workspaces: Vec::new(),
        }
    }

    /// Whether the app holds `role` (exact, case-sensitive like Entra role values).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the app holds Reader on workspace `id`.
    pub fn can_read_workspace(&self, id: &str) -> bool {
        self.workspaces.iter().any(|w| w.eq_ignore_ascii_case(id))
    }
}

impl AppSecret {
    /// A valid (not expired) secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            expired: false,
        }
    }

    /// An expired secret.
    pub fn expired(value: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            expired: true,
        }
    }
}

impl Workspace {
    /// A workspace without canned queries or Sentinel data.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            ..Self::default()
        }
    }
}

impl CannedQuery {
    pub fn new(query: impl Into<String>, response: Value) -> Self {
        Self {
            query: query.into(),
            response,
        }
    }
}
