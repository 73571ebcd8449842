//! The neutral rules of a provider body: name, provider type, secret, expiry and sync flag. The
//! provider type takes and checks its own connection fields (see [`ProviderKind`]); both report
//! into one [`Fields`], so a 422 names every wrong field at once.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Map, Value};

use crate::http::FieldError;
use crate::siem::{Fields, ProviderKind, Registry, SecretHelp};

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_SECRET_CHARS: usize = 1024;
/// Secrets shorter than this are masked completely: four characters of a short secret are too
/// large a share of it.
const MIN_SECRET_CHARS_FOR_TAIL: usize = 12;

/// A connection to test or create: its type, its type's fields and the secret.
pub struct Candidate<'r> {
    pub kind: &'r dyn ProviderKind,
    pub connection: Map<String, Value>,
    pub client_secret: SecretString,
}

pub struct NewProvider<'r> {
    pub name: String,
    pub candidate: Candidate<'r>,
    pub sync_incidents: bool,
    pub client_secret_expires_at: Option<DateTime<Utc>>,
}

/// A validated PATCH: `None` keeps the current value.
#[derive(Default)]
pub struct ProviderChanges {
    pub name: Option<String>,
    /// The whole new connection, when any of its fields changed.
    pub connection: Option<Map<String, Value>>,
    pub client_secret: Option<SecretString>,
    pub sync_incidents: Option<bool>,
    /// `Some(None)` clears the date.
    pub client_secret_expires_at: Option<Option<DateTime<Utc>>>,
    /// The names of the fields this change sets (sent, or implied), for the audit log; never
    /// their values.
    pub sent: Vec<String>,
}

impl ProviderChanges {
    /// The names of the fields this change sets, for the audit log.
    pub fn summary(&self) -> String {
        self.sent.join(", ")
    }

    /// Anything that changes where or as whom SoCMate connects.
    pub fn touches_connection(&self) -> bool {
        self.connection.is_some() || self.client_secret.is_some()
    }
}

/// The body of `POST /test`: a whole create form; what the test does not use must still be valid.
pub fn candidate<'r>(
    registry: &'r Registry,
    body: Map<String, Value>,
) -> Result<Candidate<'r>, Vec<FieldError>> {
    let mut fields = Fields::new(body);
    fields.optional("name", check_name);
    let _ = fields.take_bool("sync_incidents");
    let kind = kind_of(registry, &mut fields);
    expiry(&mut fields, kind);
    let candidate = candidate_fields(kind, &mut fields);
    finish(fields, kind, candidate)
}

pub fn new_provider<'r>(
    registry: &'r Registry,
    body: Map<String, Value>,
) -> Result<NewProvider<'r>, Vec<FieldError>> {
    let mut fields = Fields::new(body);
    let name = fields.required("name", check_name);
    let sync_incidents = fields.take_bool("sync_incidents").unwrap_or(false);
    let kind = kind_of(registry, &mut fields);
    let expires_at = expiry(&mut fields, kind);
    let provider = candidate_fields(kind, &mut fields).map(|candidate| NewProvider {
        name: name.unwrap_or_default(),
        candidate,
        sync_incidents,
        client_secret_expires_at: expires_at,
    });
    finish(fields, kind, provider)
}

/// A PATCH of a provider of type `kind` whose connection is `current`.
pub fn changes(
    kind: &dyn ProviderKind,
    current: &Map<String, Value>,
    body: Map<String, Value>,
) -> Result<ProviderChanges, Vec<FieldError>> {
    let mut sent: Vec<String> = body.keys().cloned().collect();
    let mut fields = Fields::new(body);
    let name = fields.optional("name", check_name);
    let sync_incidents = fields.take_bool("sync_incidents");
    let expiry_sent = fields.has("client_secret_expires_at");
    let expires_at = expiry(&mut fields, Some(kind));
    let client_secret = secret(&mut fields, kind, false);
    let connection = kind.changed_connection(current, &mut fields);
    let client_secret_expires_at = match (expiry_sent, expires_at) {
        (true, Some(date)) => Some(Some(date)),
        // Sent as null: cleared (an invalid date is already an error).
        (true, None) => Some(None),
        // A new secret has its own expiry: an old date would be wrong, so it is cleared.
        (false, _) if client_secret.is_some() => Some(None),
        (false, _) => None,
    };
    if client_secret_expires_at.is_some() && !expiry_sent {
        sent.push("client_secret_expires_at".to_owned());
    }
    let changes = ProviderChanges {
        name,
        connection,
        client_secret,
        sync_incidents,
        client_secret_expires_at,
        sent,
    };
    finish(fields, Some(kind), Some(changes))
}

/// The provider type named by `provider_type`, reporting a missing or unknown one.
fn kind_of<'r>(registry: &'r Registry, fields: &mut Fields) -> Option<&'r dyn ProviderKind> {
    fields.required("provider_type", |name| {
        registry.get(name).map(|kind| kind.as_ref()).ok_or_else(|| {
            format!(
                "provider_type must be one of {}, the provider types this SoCMate supports",
                registry.names()
            )
        })
    })
}

/// The secret and the type's connection fields; the secret is checked even when the type is
/// unknown, so that every problem shows at once.
fn candidate_fields<'r>(
    kind: Option<&'r dyn ProviderKind>,
    fields: &mut Fields,
) -> Option<Candidate<'r>> {
    let client_secret = match kind {
        Some(kind) => secret(fields, kind, true),
        None => {
            let _ = fields.take("client_secret");
            None
        }
    };
    let kind = kind?;
    let connection = kind.new_connection(fields);
    Some(Candidate {
        kind,
        connection: connection?,
        client_secret: client_secret?,
    })
}

/// Reports the fields nobody took; with an unknown type they are not worth listing.
fn finish<T>(
    fields: Fields,
    kind: Option<&dyn ProviderKind>,
    value: Option<T>,
) -> Result<T, Vec<FieldError>> {
    match (kind, value) {
        (Some(kind), Some(value)) if fields.is_ok() => {
            fields.finish(&format!("a {} provider", kind.provider_type()), || value)
        }
        (Some(kind), _) => {
            let errors = fields
                .finish(&format!("a {} provider", kind.provider_type()), || ())
                .err()
                .unwrap_or_default();
            Err(errors)
        }
        (None, _) => Err(fields.into_errors()),
    }
}

fn secret(fields: &mut Fields, kind: &dyn ProviderKind, required: bool) -> Option<SecretString> {
    let location = kind.secret_help().location;
    let value = match fields.take("client_secret") {
        Some(Value::String(s)) => Some(SecretString::from(s)),
        // `null` is absent, as for every field: a PATCH keeps the stored secret.
        Some(Value::Null) | None => None,
        // Never echo the value: it is a secret, whatever its type.
        Some(_) => {
            fields.error("client_secret", "client_secret must be a string");
            return None;
        }
    };
    match value {
        None if required => {
            fields.error(
                "client_secret",
                format!("client_secret is required: {location}"),
            );
            None
        }
        None => None,
        Some(secret) => match check_secret(&secret, location) {
            Ok(()) => Some(secret),
            Err(message) => {
                fields.error("client_secret", message);
                None
            }
        },
    }
}

fn expiry(fields: &mut Fields, kind: Option<&dyn ProviderKind>) -> Option<DateTime<Utc>> {
    let location = kind
        .map(|k| k.secret_help())
        .map(|h: SecretHelp| h.expiry_location);
    fields.optional("client_secret_expires_at", |value| {
        check_expiry(value, location)
    })
}

/// The name in canonical form (`text::label`): look-alike names are one name to the unique rule.
pub fn check_name(name: &str) -> Result<String, String> {
    use crate::text::TextError;
    crate::text::label(name, MAX_NAME_CHARS).map_err(|e| match e {
        TextError::Empty | TextError::TooLong { .. } => format!(
            "name must be 1 to {MAX_NAME_CHARS} characters: a label such as \"Production EU\""
        ),
        hidden @ TextError::Hidden(_) => format!("name {hidden}"),
    })
}

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
const EARLIEST_EXPIRY: DateTime<Utc> = match DateTime::from_timestamp(-62_135_596_800, 0) {
    Some(t) => t,
    None => DateTime::<Utc>::MIN_UTC,
};
const LATEST_EXPIRY: DateTime<Utc> = match DateTime::from_timestamp(253_402_300_799, 0) {
    Some(t) => t,
    None => DateTime::<Utc>::MAX_UTC,
};

/// An RFC 3339 time, or a date as the SIEM's portal shows it (midnight UTC, the cautious reading).
fn check_expiry(value: &str, location: Option<&str>) -> Result<DateTime<Utc>, String> {
    let parsed = DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_time(NaiveTime::MIN).and_utc())
        });
    match parsed {
        // Kept within four-digit years (an offset can push year 0 or 9999 past them in UTC): a
        // secret "expiring" in year 0 has expired, one in year 10000 never will.
        Some(t) => Ok(t.clamp(EARLIEST_EXPIRY, LATEST_EXPIRY)),
        None => Err(format!(
            "client_secret_expires_at must be a date (YYYY-MM-DD) or an RFC 3339 time{}",
            location.map(|l| format!(": {l}")).unwrap_or_default()
        )),
    }
}

fn check_secret(secret: &SecretString, location: &str) -> Result<(), String> {
    let chars = secret.expose_secret().chars().count();
    if chars == 0 {
        return Err(format!("client_secret must not be empty: {location}"));
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
    fn every_rfc_3339_time_is_accepted() {
        for value in [
            "2027-01-01",
            "2027-01-01T00:00:00Z",
            "2027-01-01t00:00:00z",
            "2016-12-31T23:59:60Z",
            "2027-01-01T00:00:00.123456789123Z",
            "0000-01-01T00:00:00+01:00",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59-23:59",
        ] {
            assert!(check_expiry(value, None).is_ok(), "{value}");
        }
        assert_eq!(
            check_expiry("0000-01-01T00:00:00+01:00", None),
            Ok(super::EARLIEST_EXPIRY)
        );
        assert_eq!(
            check_expiry("9999-12-31T23:59:59-23:59", None),
            Ok(super::LATEST_EXPIRY)
        );
        for value in ["2027-13-01", "tomorrow", "2027-01-01T25:00:00Z", ""] {
            assert!(check_expiry(value, None).is_err(), "{value}");
        }
    }
}
