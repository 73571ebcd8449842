//! The provider resource as the API shows it, and the request bodies it accepts.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::siem::{Check, SecretHelp};

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
/// computed when the secret was written. The connection fields are its type's own, shown at the
/// top level as the seed does (`GET /api/admin/siem-providers/types` lists them).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Provider {
    pub id: String,
    pub name: String,
    pub provider_type: String,
    pub status: ProviderStatus,
    #[serde(flatten)]
    #[schema(ignore)]
    pub connection: Map<String, Value>,
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
    /// Incidents are synced for the default provider and for providers that opt in.
    pub sync_incidents: bool,
    /// When the client secret expires, if the admin told us (the SIEM shows it beside the secret).
    #[serde(serialize_with = "optional_timestamp")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub client_secret_expires_at: Option<DateTime<Utc>>,
    /// Set when the secret expires within [`SECRET_EXPIRY_WARNING_DAYS`] or has expired.
    pub secret_expiry_warning: Option<String>,
}

/// How long before a client secret expires the provider starts warning.
pub const SECRET_EXPIRY_WARNING_DAYS: i64 = 30;

/// The warning for a secret expiring at `expires_at`, seen at `now`; `None` while it is far off.
pub fn secret_expiry_warning(
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
    help: SecretHelp,
) -> Option<String> {
    let date = expires_at.format("%Y-%m-%d");
    let left = expires_at - now;
    let renewal = help.renewal;
    if left <= chrono::TimeDelta::zero() {
        Some(format!("The client secret expired on {date}. {renewal}"))
    } else if left <= chrono::TimeDelta::days(SECRET_EXPIRY_WARNING_DAYS) {
        let days = left.num_days();
        let when = match days {
            0 => "today".to_owned(),
            1 => "in 1 day".to_owned(),
            n => format!("in {n} days"),
        };
        Some(format!(
            "The client secret expires on {date} ({when}). {renewal}"
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

/// The seed's message for a failed test; a passed test says its type's
/// [`crate::siem::ProviderKind::healthy_message`].
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

/// The test and create bodies, as the OpenAPI document shows their neutral fields; each provider
/// type adds its connection fields (see `openapi`). Bodies are read as JSON objects and taken field
/// by field ([`crate::siem::Fields`]), so that one 422 names every wrong field.
#[derive(ToSchema)]
#[schema(description = "A provider to create (or, for the test endpoint, credentials to try).")]
#[allow(dead_code)]
pub struct ConnectionBody {
    /// A label such as "Production EU". Required to create; the test endpoint checks it
    /// when sent but does not use it, so a form can send itself whole.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    name: Option<String>,
    /// The provider type (`GET /api/admin/siem-providers/types` lists them).
    provider_type: String,
    /// The secret the provider authenticates with (its form says where to find it).
    /// Write-only: never returned.
    #[schema(
        write_only,
        min_length = 1,
        max_length = 1024,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]+$"
    )]
    client_secret: String,
    /// Sync incidents even when this provider is not the default.
    sync_incidents: Option<bool>,
    /// When the secret expires: a date (`YYYY-MM-DD`) or an RFC 3339 time (the test endpoint
    /// checks it when sent but does not use it).
    #[schema(format = DateTime, min_length = 1)]
    client_secret_expires_at: Option<String>,
}

/// `PATCH` body: every field optional; an omitted secret keeps the stored one.
#[derive(ToSchema)]
#[schema(description = "Fields to change; omitted fields keep their value.")]
#[allow(dead_code)]
pub struct UpdateBody {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    name: Option<String>,
    /// A new secret (rotation); omitted keeps the stored one. Write-only.
    #[schema(
        write_only,
        min_length = 1,
        max_length = 1024,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]+$"
    )]
    client_secret: Option<String>,
    sync_incidents: Option<bool>,
    /// Absent: unchanged (or cleared when the secret changes); `null`: cleared.
    #[schema(format = DateTime, min_length = 1)]
    client_secret_expires_at: Option<String>,
}

pub fn timestamp<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

pub fn optional_timestamp<S: Serializer>(
    t: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
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
        let help = SecretHelp {
            location: "the console",
            expiry_location: "the console",
            renewal: "Renew it.",
        };
        let at = |left: TimeDelta| secret_expiry_warning(expires, expires - left, help);
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
