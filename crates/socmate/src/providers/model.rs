//! The provider resource as the API shows it, and the request bodies it accepts.

use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

use crate::sentinel::cloud::AzureCloud;
use crate::siem::Check;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderType {
    Sentinel,
}

impl ProviderType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sentinel => "sentinel",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        (text == "sentinel").then_some(Self::Sentinel)
    }
}

/// The seed's three states: `active` (connected and healthy, or not yet tested), `error` (the
/// last health check failed) and `inactive` (soft-deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderStatus {
    Active,
    Error,
    Inactive,
}

impl ProviderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Error => "error",
            Self::Inactive => "inactive",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Active, Self::Error, Self::Inactive]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Healthy,
    Error,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Healthy, Self::Error]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A provider as list and detail responses show it. It has no secret to leak: only the mask
/// computed when the secret was written.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Provider {
    pub id: String,
    pub name: String,
    pub provider_type: ProviderType,
    pub status: ProviderStatus,
    pub workspace_id: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret_masked: String,
    pub is_default: bool,
    #[serde(serialize_with = "optional_timestamp")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_health_check: Option<DateTime<Utc>>,
    pub last_health_status: Option<HealthStatus>,
    pub created_by: String,
    #[serde(serialize_with = "timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    pub cloud: AzureCloud,
    /// Incidents are synced for the default provider and for providers that opt in.
    pub sync_incidents: bool,
    /// When the client secret expires, if the admin told us (Azure shows it beside the secret).
    #[serde(serialize_with = "optional_timestamp")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub client_secret_expires_at: Option<DateTime<Utc>>,
    /// Set when the secret expires within [`SECRET_EXPIRY_WARNING_DAYS`] or has expired.
    pub secret_expiry_warning: Option<String>,
}

/// How long before a client secret expires the provider starts warning.
pub const SECRET_EXPIRY_WARNING_DAYS: i64 = 30;

/// The warning for a secret expiring at `expires_at`, seen at `now`; `None` while it is far off.
pub fn secret_expiry_warning(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Option<String> {
    let date = expires_at.format("%Y-%m-%d");
    let left = expires_at - now;
    if left <= chrono::TimeDelta::zero() {
        Some(format!(
            "The client secret expired on {date}. Create a new one in Azure Portal > App \
             Registrations > Your app > Certificates & secrets and enter it here."
        ))
    } else if left <= chrono::TimeDelta::days(SECRET_EXPIRY_WARNING_DAYS) {
        let days = left.num_days();
        let when = match days {
            0 => "today".to_owned(),
            1 => "in 1 day".to_owned(),
            n => format!("in {n} days"),
        };
        Some(format!(
            "The client secret expires on {date} ({when}). Create a new one in Azure Portal > \
             App Registrations > Your app > Certificates & secrets and enter it here."
        ))
    } else {
        None
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderList {
    pub providers: Vec<Provider>,
    pub total: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    pub message: String,
}

pub const MESSAGE_HEALTHY: &str = "Connected to Sentinel workspace successfully";
pub const MESSAGE_FAILED: &str = "Connection test failed. Check server logs for details.";

/// The seed's `{status, message, latency_ms}`, plus the `checks` that say which step failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionTestResult {
    pub status: HealthStatus,
    #[schema(value_type = String)]
    pub message: &'static str,
    pub latency_ms: f64,
    pub checks: Vec<Check>,
}

/// Fields shared by the test and create bodies. Everything is optional at this stage so that
/// validation can report every wrong field at once.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(description = "A provider to create (or, for the test endpoint, credentials to try).")]
pub struct ConnectionBody {
    /// A label such as "Production Sentinel". Required to create; the test endpoint checks it
    /// when sent but does not use it, so a form can send itself whole.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: Option<String>,
    #[schema(value_type = String, pattern = "^sentinel$")]
    pub provider_type: Option<String>,
    /// Azure Portal > Log Analytics workspace > Properties > Workspace ID.
    #[schema(value_type = String, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub workspace_id: Option<String>,
    /// Azure Portal > Azure Active Directory > Properties > Tenant ID (a GUID, or a verified
    /// domain such as contoso.onmicrosoft.com).
    #[schema(value_type = String, max_length = 253, pattern = r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{1,63})$")]
    pub tenant_id: Option<String>,
    /// Azure Portal > App Registrations > Your app > Application (client) ID.
    #[schema(value_type = String, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub client_id: Option<String>,
    /// Azure Portal > App Registrations > Your app > Certificates & secrets (the secret's
    /// Value). Write-only: never returned.
    #[serde(default, deserialize_with = "secret_field")]
    #[schema(value_type = String, write_only, min_length = 1, max_length = 1024, pattern = r"^[^\x00-\x1F\x7F-\x9F]+$")]
    pub client_secret: Option<SecretString>,
    #[schema(value_type = Option<AzureCloud>)]
    pub cloud: Option<String>,
    /// Sync incidents even when this provider is not the default.
    pub sync_incidents: Option<bool>,
    /// When the secret expires: a date (`YYYY-MM-DD`) or an RFC 3339 time (the test endpoint
    /// checks it when sent but does not use it).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub client_secret_expires_at: Option<String>,
}

/// `PATCH` body: every field optional; an omitted secret keeps the stored one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(description = "Fields to change; omitted fields keep their value.")]
pub struct UpdateBody {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: Option<String>,
    #[schema(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub workspace_id: Option<String>,
    #[schema(
        max_length = 253,
        pattern = r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{1,63})$"
    )]
    pub tenant_id: Option<String>,
    #[schema(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub client_id: Option<String>,
    /// A new secret (rotation); omitted keeps the stored one. Write-only.
    #[serde(default, deserialize_with = "secret_field")]
    #[schema(value_type = Option<String>, write_only, min_length = 1, max_length = 1024, pattern = r"^[^\x00-\x1F\x7F-\x9F]+$")]
    pub client_secret: Option<SecretString>,
    #[schema(value_type = Option<AzureCloud>)]
    pub cloud: Option<String>,
    pub sync_incidents: Option<bool>,
    /// Absent: unchanged (or cleared when the secret changes); `null`: cleared.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub client_secret_expires_at: Option<Option<String>>,
}

/// Tells a field sent as `null` (`Some(None)`) from an absent one (`None`, via `default`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Deserialises a secret without ever echoing the submitted value in an error message.
fn secret_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    struct SecretVisitor;
    impl serde::de::Visitor<'_> for SecretVisitor {
        type Value = Option<SecretString>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client_secret as a string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(SecretString::from(v.to_owned())))
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(SecretString::from(v)))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    struct Redacted;
    impl serde::de::Expected for Redacted {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client_secret as a string")
        }
    }
    d.deserialize_any(SecretVisitor).map_err(|_: D::Error| {
        serde::de::Error::invalid_type(
            serde::de::Unexpected::Other("a non-string value"),
            &Redacted,
        )
    })
}

pub fn timestamp<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn optional_timestamp<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => timestamp(t, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone as _};

    use super::*;

    #[test]
    fn the_warning_starts_30_days_out_and_changes_wording_once_expired() {
        let expires = Utc.with_ymd_and_hms(2026, 12, 31, 0, 0, 0).unwrap();
        let at = |left: TimeDelta| secret_expiry_warning(expires, expires - left);
        assert_eq!(at(TimeDelta::days(30) + TimeDelta::seconds(1)), None);
        assert!(at(TimeDelta::days(30)).unwrap().contains("(in 30 days)"));
        assert!(at(TimeDelta::hours(36)).unwrap().contains("(in 1 day)"));
        assert!(at(TimeDelta::hours(2)).unwrap().contains("(today)"));
        assert!(
            at(TimeDelta::zero())
                .unwrap()
                .contains("expired on 2026-12-31")
        );
        assert!(
            at(-TimeDelta::days(3))
                .unwrap()
                .contains("expired on 2026-12-31")
        );
    }
}
