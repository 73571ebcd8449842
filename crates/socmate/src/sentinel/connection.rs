//! What a Sentinel provider stores and how an admin fills it in: the workspace, the tenant, the
//! app registration and its cloud, each checked for shape (ids can only ever be GUIDs or DNS
//! names when they become path segments of outbound URLs) with a message that says where in the
//! Azure Portal the right value lives (the seed's "Required Information" table).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::cloud::AzureCloud;
use crate::siem::fields::is_guid;
use crate::siem::{Fields, FormCheck, FormField, FormOption, ProviderForm, QueryHelp, SecretHelp};

pub const PROVIDER_TYPE: &str = "sentinel";
pub const MESSAGE_HEALTHY: &str = "Connected to Sentinel workspace successfully";

const WHERE_WORKSPACE: &str = "Azure Portal > Log Analytics workspace > Properties > Workspace ID";
const WHERE_TENANT: &str = "Azure Portal > Azure Active Directory > Properties > Tenant ID";
const WHERE_CLIENT: &str = "Azure Portal > App Registrations > Your app > Application (client) ID";
const WHERE_SECRET: &str =
    "Azure Portal > App Registrations > Your app > Certificates & secrets (the secret's Value)";

pub const SECRET_HELP: SecretHelp = SecretHelp {
    location: WHERE_SECRET,
    expiry_location: "Azure Portal > App Registrations > Your app > Certificates & secrets (the secret's Expires column)",
    renewal: "Create a new one in Azure Portal > App Registrations > Your app > Certificates & \
              secrets and enter it here.",
};

/// Where a Sentinel provider reads its incidents from.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum IncidentSource {
    /// Microsoft Graph's security API: the tenant's Defender XDR incidents, with Sentinel's only
    /// for workspaces onboarded to the Defender portal (the seed's documented path).
    #[default]
    Graph,
    /// The workspace's own `SecurityIncident` and `SecurityAlert` tables, through the Log
    /// Analytics query API: every Sentinel incident of this workspace, onboarded or not, within
    /// the workspace's retention.
    Workspace,
}

impl IncidentSource {
    pub const ALL: [Self; 2] = [Self::Graph, Self::Workspace];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Graph => "graph",
            Self::Workspace => "workspace",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Graph where the cloud offers its security API, else the workspace.
    pub fn default_for(cloud: AzureCloud) -> Self {
        if cloud.has_graph_security() {
            Self::Graph
        } else {
            Self::Workspace
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Graph => "Microsoft Graph (Defender XDR)",
            Self::Workspace => "The workspace's own tables",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Self::Graph => {
                "The tenant's Defender XDR incidents. Sentinel incidents appear only for                  workspaces onboarded to the Defender portal, and never those created by API,                  playbook or by hand."
            }
            Self::Workspace => {
                "This workspace's SecurityIncident and SecurityAlert tables: every Sentinel                  incident of the workspace, onboarded or not, as far back as its retention                  keeps them."
            }
        }
    }
}

/// A Sentinel provider's stored connection (the JSON object of its `connection` column, and the
/// fields the API shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentinelConfig {
    pub workspace_id: String,
    pub tenant_id: String,
    pub client_id: String,
    #[serde(default)]
    pub cloud: AzureCloud,
    /// Connections stored before the choice existed read from their cloud's default source.
    #[serde(default)]
    pub incident_source: IncidentSource,
    /// The tenant's id as Entra ID names it in its tokens (`tid`), learned on the first token:
    /// shown beside `tenant_id`, which may be a domain. Never set by an admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_tenant_id: Option<String>,
}

impl SentinelConfig {
    pub fn from_map(connection: &Map<String, Value>) -> Result<Self, String> {
        let mut config: Self = serde_json::from_value(Value::Object(connection.clone()))
            .map_err(|e| format!("its stored Sentinel connection is unreadable: {e}"))?;
        if !connection.contains_key("incident_source") {
            // Stored before the choice existed: the source its cloud offers.
            config.incident_source = IncidentSource::default_for(config.cloud);
        }
        Ok(config)
    }

    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            // A struct of strings always serialises to an object.
            _ => Map::new(),
        }
    }
}

/// The fields of a create or test body, as the OpenAPI document shows them.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SentinelFields {
    /// Azure Portal > Log Analytics workspace > Properties > Workspace ID.
    #[schema(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    workspace_id: String,
    /// Azure Portal > Azure Active Directory > Properties > Tenant ID (a GUID, or a verified
    /// domain such as contoso.onmicrosoft.com).
    #[schema(
        max_length = 253,
        pattern = r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{1,63})$"
    )]
    tenant_id: String,
    /// Azure Portal > App Registrations > Your app > Application (client) ID.
    #[schema(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    client_id: String,
    /// The Azure cloud the tenant lives in (default AzurePublic).
    #[schema(inline)]
    cloud: Option<AzureCloud>,
    /// Where incidents are read from: `graph` (default; `workspace` in Azure China, which has no
    /// Graph security API) or `workspace`.
    #[schema(inline)]
    incident_source: Option<IncidentSource>,
}

/// The Sentinel fields a PATCH may change.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SentinelFieldChanges {
    #[schema(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    workspace_id: Option<String>,
    #[schema(
        max_length = 253,
        pattern = r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{1,63})$"
    )]
    tenant_id: Option<String>,
    #[schema(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    client_id: Option<String>,
    #[schema(inline)]
    cloud: Option<AzureCloud>,
    /// Changing the cloud without naming a source picks the new cloud's default source.
    #[schema(inline)]
    incident_source: Option<IncidentSource>,
}

/// Takes the Sentinel fields of a create or test body.
pub fn new_config(fields: &mut Fields) -> Option<SentinelConfig> {
    let workspace_id = fields.required("workspace_id", check_workspace_id);
    let tenant_id = fields.required("tenant_id", check_tenant_id);
    let client_id = fields.required("client_id", check_client_id);
    let cloud = fields.optional("cloud", check_cloud).unwrap_or_default();
    let incident_source = incident_source_for(cloud, None, fields);
    Some(SentinelConfig {
        workspace_id: workspace_id?,
        tenant_id: tenant_id?,
        client_id: client_id?,
        cloud,
        incident_source: incident_source?,
        resolved_tenant_id: None,
    })
}

/// The `incident_source` sent, else `kept` (a PATCH within the same cloud), else the cloud's
/// default; Graph is refused where the cloud has no Graph security API.
fn incident_source_for(
    cloud: AzureCloud,
    kept: Option<IncidentSource>,
    fields: &mut Fields,
) -> Option<IncidentSource> {
    let source = fields.optional("incident_source", check_incident_source);
    if fields.has_error("incident_source") {
        return None;
    }
    let source = source
        .or(kept)
        .unwrap_or(IncidentSource::default_for(cloud));
    if source == IncidentSource::Graph && !cloud.has_graph_security() {
        fields.error(
            "incident_source",
            format!(
                "Microsoft Graph offers no security incidents in {}: use \"workspace\"",
                cloud.label()
            ),
        );
        return None;
    }
    Some(source)
}

/// Applies the Sentinel fields of a PATCH to `current`; `None` when none was sent.
pub fn changed_config(current: &SentinelConfig, fields: &mut Fields) -> Option<SentinelConfig> {
    let sent = [
        "workspace_id",
        "tenant_id",
        "client_id",
        "cloud",
        "incident_source",
    ]
    .iter()
    .any(|f| fields.has(f));
    let workspace_id = fields.optional("workspace_id", check_workspace_id);
    let tenant_id = fields.optional("tenant_id", check_tenant_id);
    let client_id = fields.optional("client_id", check_client_id);
    let cloud = fields
        .optional("cloud", check_cloud)
        .unwrap_or(current.cloud);
    let kept = (cloud == current.cloud).then_some(current.incident_source);
    let incident_source = incident_source_for(cloud, kept, fields);
    sent.then(|| {
        let config = SentinelConfig {
            workspace_id: workspace_id.unwrap_or_else(|| current.workspace_id.clone()),
            tenant_id: tenant_id.unwrap_or_else(|| current.tenant_id.clone()),
            client_id: client_id.unwrap_or_else(|| current.client_id.clone()),
            cloud,
            incident_source: incident_source.unwrap_or(current.incident_source),
            resolved_tenant_id: None,
        };
        // Another tenant or cloud is another identity, to be learned again.
        let same_tenant = config.tenant_id == current.tenant_id && config.cloud == current.cloud;
        SentinelConfig {
            resolved_tenant_id: same_tenant
                .then(|| current.resolved_tenant_id.clone())
                .flatten(),
            ..config
        }
    })
}

pub fn form() -> ProviderForm {
    let guid = Some("[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}");
    let text = |name, label, help, placeholder, pattern| FormField {
        name,
        label,
        help,
        required: true,
        input: "text",
        placeholder: Some(placeholder),
        pattern,
        options: Vec::new(),
    };
    ProviderForm {
        provider_type: PROVIDER_TYPE,
        label: "Microsoft Sentinel",
        name_placeholder: "Production Sentinel",
        intro: "Fill in the connection details of the Azure app registration, test the \
                connection, then save. The app needs Microsoft Graph > SecurityIncident.Read.All \
                and SecurityAlert.Read.All as application permissions with admin consent, and \
                read access to the workspace's logs: the Log Analytics Reader (or Microsoft \
                Sentinel Reader) role on the workspace.",
        fields: vec![
            text(
                "workspace_id",
                "Workspace ID",
                WHERE_WORKSPACE,
                "c0ffee00-0000-4000-8000-00000000beef",
                guid,
            ),
            text(
                "tenant_id",
                "Tenant ID",
                "Azure Portal > Azure Active Directory > Properties > Tenant ID (a GUID, or a verified domain such as contoso.onmicrosoft.com)",
                "72f988bf-86f1-41af-91ab-2d7cd011db47",
                None,
            ),
            text(
                "client_id",
                "Client ID",
                WHERE_CLIENT,
                "b1a3c5d7-0000-4000-8000-00000000a001",
                guid,
            ),
            FormField {
                name: "cloud",
                label: "Cloud",
                help: "The Azure cloud the tenant lives in",
                required: false,
                input: "select",
                placeholder: None,
                pattern: None,
                options: AzureCloud::ALL
                    .iter()
                    .map(|cloud| FormOption {
                        value: cloud.as_str(),
                        label: cloud.label(),
                        hint: cloud.hint(),
                    })
                    .collect(),
            },
            FormField {
                name: "incident_source",
                label: "Incident source",
                help: "Where SoCMate reads this workspace's incidents from",
                required: false,
                input: "select",
                placeholder: None,
                pattern: None,
                options: IncidentSource::ALL
                    .iter()
                    .map(|source| FormOption {
                        value: source.as_str(),
                        label: source.label(),
                        hint: Some(source.hint()),
                    })
                    .collect(),
            },
            FormField {
                name: "client_secret",
                label: "Client secret",
                help: WHERE_SECRET,
                required: true,
                input: "secret",
                placeholder: None,
                pattern: None,
                options: Vec::new(),
            },
        ],
        checks: vec![
            FormCheck {
                name: super::CHECK_TOKEN,
                label: "Entra ID token",
            },
            FormCheck {
                name: super::CHECK_LOG_ANALYTICS,
                label: "Log Analytics query",
            },
            FormCheck {
                name: super::CHECK_INCIDENTS,
                label: "Incidents",
            },
            FormCheck {
                name: super::CHECK_ALERTS,
                label: "Alerts",
            },
        ],
        query: QueryHelp {
            language: "KQL",
            example: "SecurityIncident | summarize count() by Status",
            hint: "Runs on the provider's Log Analytics workspace. The time range applies on top \
                   of the query's own filters.",
        },
    }
}

fn check_workspace_id(value: &str) -> Result<String, String> {
    is_guid(value).then(|| value.to_owned()).ok_or_else(|| {
        format!("workspace_id must be the workspace GUID, not its name: {WHERE_WORKSPACE}")
    })
}

fn check_client_id(value: &str) -> Result<String, String> {
    is_guid(value)
        .then(|| value.to_owned())
        .ok_or_else(|| format!("client_id must be a GUID: {WHERE_CLIENT}"))
}

fn check_tenant_id(value: &str) -> Result<String, String> {
    (is_guid(value) || is_domain(value))
        .then(|| value.to_owned())
        .ok_or_else(|| {
            format!("tenant_id must be a GUID or a domain such as contoso.onmicrosoft.com: {WHERE_TENANT}")
        })
}

fn check_incident_source(value: &str) -> Result<IncidentSource, String> {
    IncidentSource::parse(value)
        .ok_or_else(|| "incident_source must be \"graph\" or \"workspace\"".to_owned())
}

fn check_cloud(value: &str) -> Result<AzureCloud, String> {
    AzureCloud::parse(value).ok_or_else(|| {
        let names: Vec<&str> = AzureCloud::ALL.iter().map(|c| c.as_str()).collect();
        format!("cloud must be one of {}", names.join(", "))
    })
}

/// A DNS name of at least two labels, letters/digits/hyphens, as Entra ID verified domains are.
pub fn is_domain(value: &str) -> bool {
    let labels: Vec<&str> = value.split('.').collect();
    value.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_alphabetic()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::providers::validate::new_provider;
    use crate::sentinel::Sentinel;
    use crate::siem::Registry;

    #[test]
    fn domains() {
        assert!(is_domain("contoso.onmicrosoft.com"));
        assert!(is_domain("fabrikam.com"));
        for bad in [
            "contoso",
            "a..b",
            "-a.com",
            "a.com/evil",
            "a.com?x",
            "evil.com@x.y",
            "ex ample.com",
            "a.c0m",
            "ünï.com",
            "a.b\r\n",
        ] {
            assert!(!is_domain(bad), "{bad}");
        }
    }

    #[test]
    fn reports_every_wrong_field_at_once() {
        let registry = Registry::default().with(Arc::new(
            Sentinel::new(Default::default()).unwrap_or_else(|e| panic!("{e}")),
        ));
        let body = json!({
            "provider_type": "sentinel",
            "workspace_id": "my-workspace",
            "client_secret": "",
            "colour": "blue",
        });
        let Value::Object(body) = body else {
            unreachable!()
        };
        let errors = new_provider(&registry, body).err().unwrap_or_default();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "name",
                "client_secret",
                "workspace_id",
                "tenant_id",
                "client_id",
                "colour"
            ]
        );
        assert!(errors[2].message.contains("Properties > Workspace ID"));
    }

    #[test]
    fn the_incident_source_defaults_by_cloud_and_null_is_absent() {
        let body = |extra: Value| {
            let mut body = json!({
                "workspace_id": "c0ffee00-0000-4000-8000-00000000beef",
                "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
                "client_id": "b1a3c5d7-0000-4000-8000-00000000a001",
            });
            if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
                b.extend(extra);
            }
            let Value::Object(body) = body else {
                unreachable!()
            };
            Fields::new(body)
        };
        let source = |extra| new_config(&mut body(extra)).map(|c| c.incident_source);
        assert_eq!(source(json!({})), Some(IncidentSource::Graph));
        assert_eq!(
            source(json!({"cloud": "AzureChinaCloud", "incident_source": null})),
            Some(IncidentSource::Workspace)
        );
        let mut refused = body(json!({"cloud": "AzureChinaCloud", "incident_source": "graph"}));
        assert_eq!(new_config(&mut refused), None);
        assert!(refused.has_error("incident_source"));
    }

    #[test]
    fn a_patch_changes_only_what_it_sends() {
        let current = SentinelConfig {
            workspace_id: "c0ffee00-0000-4000-8000-00000000beef".into(),
            tenant_id: "contoso.onmicrosoft.com".into(),
            client_id: "b1a3c5d7-0000-4000-8000-00000000a001".into(),
            cloud: AzureCloud::AzurePublic,
            incident_source: IncidentSource::Graph,
            resolved_tenant_id: Some("72f988bf-86f1-41af-91ab-2d7cd011db47".into()),
        };
        let Value::Object(body) = json!({"cloud": "AzureUSGovernment"}) else {
            unreachable!()
        };
        let mut fields = Fields::new(body);
        let changed = changed_config(&current, &mut fields);
        assert_eq!(
            changed,
            Some(SentinelConfig {
                cloud: AzureCloud::AzureUSGovernment,
                resolved_tenant_id: None,
                ..current.clone()
            }),
            "another cloud: the tenant id is learned again"
        );
        let mut nothing = Fields::default();
        assert_eq!(changed_config(&current, &mut nothing), None);
        assert_eq!(
            SentinelConfig::from_map(&current.to_map()).ok(),
            Some(current)
        );
    }
}
