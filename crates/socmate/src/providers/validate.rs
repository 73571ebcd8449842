//! Strict input rules. Each message names the field and where in the Azure Portal the right
//! value lives (the seed's "Required Information" table).
//!
//! Ids are checked for shape here so that they can only ever be GUIDs or DNS names when they
//! become path segments of outbound URLs.

use chrono::{DateTime, Datelike as _, NaiveDate, NaiveTime, Utc};
use secrecy::{ExposeSecret as _, SecretString};

use super::model::{ConnectionBody, ProviderType, UpdateBody};
use crate::http::FieldError;
use crate::sentinel::cloud::AzureCloud;

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_SECRET_CHARS: usize = 1024;
/// Secrets shorter than this are masked completely: four characters of a short secret are too
/// large a share of it.
const MIN_SECRET_CHARS_FOR_TAIL: usize = 12;

const WHERE_WORKSPACE: &str = "Azure Portal > Log Analytics workspace > Properties > Workspace ID";
const WHERE_TENANT: &str = "Azure Portal > Azure Active Directory > Properties > Tenant ID";
const WHERE_CLIENT: &str = "Azure Portal > App Registrations > Your app > Application (client) ID";
const WHERE_SECRET_EXPIRY: &str = "Azure Portal > App Registrations > Your app > Certificates & secrets (the secret's Expires column)";
const WHERE_SECRET: &str =
    "Azure Portal > App Registrations > Your app > Certificates & secrets (the secret's Value)";

/// Connection details that passed validation.
pub struct Connection {
    pub provider_type: ProviderType,
    pub workspace_id: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub cloud: AzureCloud,
}

pub struct NewProvider {
    pub name: String,
    pub connection: Connection,
    pub sync_incidents: bool,
    pub client_secret_expires_at: Option<DateTime<Utc>>,
}

/// A validated PATCH: `None` keeps the current value.
#[derive(Default)]
pub struct ProviderChanges {
    pub name: Option<String>,
    pub workspace_id: Option<String>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub cloud: Option<AzureCloud>,
    pub sync_incidents: Option<bool>,
    /// `Some(None)` clears the date.
    pub client_secret_expires_at: Option<Option<DateTime<Utc>>>,
}

impl ProviderChanges {
    /// The names of the fields this change sets, for the audit log.
    pub fn summary(&self) -> String {
        [
            ("name", self.name.is_some()),
            ("workspace_id", self.workspace_id.is_some()),
            ("tenant_id", self.tenant_id.is_some()),
            ("client_id", self.client_id.is_some()),
            ("client_secret", self.client_secret.is_some()),
            ("cloud", self.cloud.is_some()),
            ("sync_incidents", self.sync_incidents.is_some()),
            (
                "client_secret_expires_at",
                self.client_secret_expires_at.is_some(),
            ),
        ]
        .iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
    }

    /// Anything that changes where or as whom SoCMate connects.
    pub fn touches_connection(&self) -> bool {
        self.workspace_id.is_some()
            || self.tenant_id.is_some()
            || self.client_id.is_some()
            || self.client_secret.is_some()
            || self.cloud.is_some()
    }
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, field: &str, message: String) {
        self.0.push(FieldError {
            field: field.to_owned(),
            message,
        });
    }

    fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(self.0)
        }
    }
}

pub fn connection(body: ConnectionBody) -> Result<Connection, Vec<FieldError>> {
    let mut errors = Errors::default();
    // The test endpoint takes a whole create form: what it does not use must still be valid.
    optional(&mut errors, "name", body.name, check_name);
    optional(
        &mut errors,
        "client_secret_expires_at",
        body.client_secret_expires_at,
        check_expiry,
    );
    let provider_type = match body.provider_type.as_deref() {
        None => {
            errors.add(
                "provider_type",
                "provider_type is required; use \"sentinel\"".into(),
            );
            None
        }
        Some(t) => ProviderType::parse(t).or_else(|| {
            errors.add(
                "provider_type",
                "provider_type must be \"sentinel\", the only provider type supported today".into(),
            );
            None
        }),
    };
    let workspace_id = required(
        &mut errors,
        "workspace_id",
        body.workspace_id,
        check_workspace_id,
    );
    let tenant_id = required(&mut errors, "tenant_id", body.tenant_id, check_tenant_id);
    let client_id = required(&mut errors, "client_id", body.client_id, check_client_id);
    let client_secret = match body.client_secret {
        None => {
            errors.add(
                "client_secret",
                format!("client_secret is required: {WHERE_SECRET}"),
            );
            None
        }
        Some(secret) => check_secret(&secret)
            .map_err(|m| errors.add("client_secret", m))
            .ok()
            .map(|()| secret),
    };
    let cloud = optional(&mut errors, "cloud", body.cloud, check_cloud).unwrap_or_default();
    errors.finish(|| Connection {
        provider_type: provider_type.unwrap_or(ProviderType::Sentinel),
        workspace_id: workspace_id.unwrap_or_default(),
        tenant_id: tenant_id.unwrap_or_default(),
        client_id: client_id.unwrap_or_default(),
        client_secret: client_secret.unwrap_or_else(|| SecretString::from(String::new())),
        cloud,
    })
}

pub fn new_provider(mut body: ConnectionBody) -> Result<NewProvider, Vec<FieldError>> {
    let name = body.name.take();
    let sync_incidents = body.sync_incidents.take().unwrap_or(false);
    let mut errors = Errors::default();
    let name = required(&mut errors, "name", name, check_name);
    let expires_at = optional(
        &mut errors,
        "client_secret_expires_at",
        body.client_secret_expires_at.take(),
        check_expiry,
    );
    match connection(body) {
        Ok(connection) => errors.finish(|| NewProvider {
            name: name.unwrap_or_default(),
            connection,
            sync_incidents,
            client_secret_expires_at: expires_at,
        }),
        Err(mut more) => {
            errors.0.append(&mut more);
            Err(errors.0)
        }
    }
}

pub fn changes(body: UpdateBody) -> Result<ProviderChanges, Vec<FieldError>> {
    let mut errors = Errors::default();
    let name = optional(&mut errors, "name", body.name, check_name);
    let workspace_id = optional(
        &mut errors,
        "workspace_id",
        body.workspace_id,
        check_workspace_id,
    );
    let tenant_id = optional(&mut errors, "tenant_id", body.tenant_id, check_tenant_id);
    let client_id = optional(&mut errors, "client_id", body.client_id, check_client_id);
    let client_secret = match body.client_secret {
        Some(secret) => check_secret(&secret)
            .map_err(|m| errors.add("client_secret", m))
            .ok()
            .map(|()| secret),
        None => None,
    };
    let cloud = optional(&mut errors, "cloud", body.cloud, check_cloud);
    let expires_at = match body.client_secret_expires_at {
        Some(Some(raw)) => optional(
            &mut errors,
            "client_secret_expires_at",
            Some(raw),
            check_expiry,
        )
        .map(Some),
        Some(None) => Some(None),
        // A new secret has its own expiry: an old date would be wrong, so it is cleared.
        None if client_secret.is_some() => Some(None),
        None => None,
    };
    errors.finish(|| ProviderChanges {
        name,
        workspace_id,
        tenant_id,
        client_id,
        client_secret,
        cloud,
        sync_incidents: body.sync_incidents,
        client_secret_expires_at: expires_at,
    })
}

fn required<T>(
    errors: &mut Errors,
    field: &str,
    value: Option<String>,
    check: impl Fn(&str) -> Result<T, String>,
) -> Option<T> {
    match value {
        None => {
            // The shape rule (with its "where to find it") tells the caller what to send.
            let rule = check("").err().unwrap_or_default();
            errors.add(field, format!("{field} is required; {rule}"));
            None
        }
        Some(v) => check(&v).map_err(|m| errors.add(field, m)).ok(),
    }
}

fn optional<T>(
    errors: &mut Errors,
    field: &str,
    value: Option<String>,
    check: impl Fn(&str) -> Result<T, String>,
) -> Option<T> {
    value.and_then(|v| check(&v).map_err(|m| errors.add(field, m)).ok())
}

fn check_name(name: &str) -> Result<String, String> {
    let trimmed = name.trim();
    let chars = trimmed.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || trimmed.chars().any(char::is_control) {
        return Err(format!(
            "name must be 1 to {MAX_NAME_CHARS} characters without control characters: a label such as \"Production Sentinel\""
        ));
    }
    Ok(trimmed.to_owned())
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

/// An RFC 3339 time, or a date as the Azure Portal shows it (midnight UTC, the cautious reading).
fn check_expiry(value: &str) -> Result<DateTime<Utc>, String> {
    let parsed = DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_time(NaiveTime::MIN).and_utc())
        });
    match parsed {
        // Four-digit years, as both formats spell them.
        Some(t) if (1..=9999).contains(&t.year()) => Ok(t),
        _ => Err(format!(
            "client_secret_expires_at must be a date (YYYY-MM-DD) or an RFC 3339 time: {WHERE_SECRET_EXPIRY}"
        )),
    }
}

fn check_cloud(value: &str) -> Result<AzureCloud, String> {
    AzureCloud::parse(value).ok_or_else(|| {
        "cloud must be one of AzurePublic, AzureUSGovernment, AzureChinaCloud".to_owned()
    })
}

fn check_secret(secret: &SecretString) -> Result<(), String> {
    let chars = secret.expose_secret().chars().count();
    if chars == 0 {
        return Err(format!("client_secret must not be empty: {WHERE_SECRET}"));
    }
    if chars > MAX_SECRET_CHARS {
        return Err(format!(
            "client_secret must be at most {MAX_SECRET_CHARS} characters"
        ));
    }
    if secret.expose_secret().chars().any(char::is_control) {
        return Err("client_secret must not contain control characters (a stray newline from copy and paste?)".into());
    }
    Ok(())
}

/// A canonical 8-4-4-4-12 GUID (either case).
pub fn is_guid(value: &str) -> bool {
    value.len() == 36
        && value.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
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

/// `****` plus the last four characters, or just `****` for a short secret.
pub fn mask_secret(secret: &SecretString) -> String {
    let secret = secret.expose_secret();
    let chars = secret.chars().count();
    if chars < MIN_SECRET_CHARS_FOR_TAIL {
        return "****".to_owned();
    }
    let tail: String = secret.chars().skip(chars - 4).collect();
    format!("****{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_show_at_most_the_last_four_characters() {
        let mask = |s: &str| mask_secret(&SecretString::from(s.to_owned()));
        assert_eq!(mask("your-client-secret"), "****cret");
        assert_eq!(mask("short"), "****");
        assert_eq!(mask("elevenchars"), "****");
        assert_eq!(mask("twelve-chars"), "****hars");
        assert_eq!(mask("ünïcödé-sécrét-välüé"), "****älüé");
    }

    #[test]
    fn guids_and_domains() {
        assert!(is_guid("72f988bf-86f1-41af-91ab-2d7cd011db47"));
        assert!(is_guid("72F988BF-86F1-41AF-91AB-2D7CD011DB47"));
        for bad in [
            "",
            "72f988bf86f141af91ab2d7cd011db47",
            "{72f988bf-86f1-41af-91ab-2d7cd011db47}",
            "72f988bf-86f1-41af-91ab-2d7cd011db4g",
            "your-log-analytics-workspace-id",
        ] {
            assert!(!is_guid(bad), "{bad}");
        }
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
        let errors = new_provider(ConnectionBody {
            provider_type: Some("splunk".into()),
            workspace_id: Some("my-workspace".into()),
            client_secret: Some(SecretString::from(String::new())),
            ..Default::default()
        })
        .err()
        .unwrap();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "name",
                "provider_type",
                "workspace_id",
                "tenant_id",
                "client_id",
                "client_secret"
            ]
        );
        assert!(errors[2].message.contains("Properties > Workspace ID"));
    }
}
