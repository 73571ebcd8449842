//! The provider resource as the API shows it, and the request bodies it accepts.

use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize, Serializer};

use crate::sentinel::cloud::AzureCloud;
use crate::siem::Check;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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
    pub last_health_check: Option<DateTime<Utc>>,
    pub last_health_status: Option<HealthStatus>,
    pub created_by: String,
    #[serde(serialize_with = "timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp")]
    pub updated_at: DateTime<Utc>,
    pub cloud: AzureCloud,
    /// Incidents are synced for the default provider and for providers that opt in.
    pub sync_incidents: bool,
}

#[derive(Debug, Serialize)]
pub struct ProviderList {
    pub providers: Vec<Provider>,
    pub total: usize,
}

#[derive(Debug, Serialize)]
pub struct Message {
    pub message: String,
}

pub const MESSAGE_HEALTHY: &str = "Connected to Sentinel workspace successfully";
pub const MESSAGE_FAILED: &str = "Connection test failed. Check server logs for details.";

/// The seed's `{status, message, latency_ms}`, plus the `checks` that say which step failed.
#[derive(Debug, Serialize)]
pub struct ConnectionTestResult {
    pub status: HealthStatus,
    pub message: &'static str,
    pub latency_ms: f64,
    pub checks: Vec<Check>,
}

/// Fields shared by the test and create bodies. Everything is optional at this stage so that
/// validation can report every wrong field at once.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionBody {
    /// Accepted (and ignored) by the test endpoint, so a form can send itself whole.
    pub name: Option<String>,
    pub provider_type: Option<String>,
    pub workspace_id: Option<String>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    #[serde(default, deserialize_with = "secret_field")]
    pub client_secret: Option<SecretString>,
    pub cloud: Option<String>,
    /// Sync incidents even when this provider is not the default.
    pub sync_incidents: Option<bool>,
}

/// `PATCH` body: every field optional; an omitted secret keeps the stored one.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    pub name: Option<String>,
    pub workspace_id: Option<String>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    #[serde(default, deserialize_with = "secret_field")]
    pub client_secret: Option<SecretString>,
    pub cloud: Option<String>,
    pub sync_incidents: Option<bool>,
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
