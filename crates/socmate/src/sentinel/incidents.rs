//! Graph incidents and alerts mapped to SoCMate's snake_case shape.
//!
//! Enum values are kept as Graph sent them (first letter lower-cased, since Graph's own examples
//! mix `Active` and `active`), so values Graph adds later are stored, not rejected.
//!
//! Graph's incidents are the tenant's Microsoft Defender XDR incidents: Defender for Endpoint,
//! Office 365, Identity, Cloud Apps, and Sentinel incidents of workspaces onboarded to the
//! Defender portal (microsoft-graph-docs `security-list-incidents.md`; azure-docs
//! `sentinel/move-to-defender.md`). Neither an incident nor an alert names the Sentinel workspace
//! it came from (no such property in `security-incident.md` or `security-alert.md`), so an
//! incident records the tenant and the products of its alerts (`serviceSource`,
//! `detectionSource`) — `sources` — and `scope: "tenant"` says it is tenant-wide.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::siem::{Alert, Incident, text_field};

#[derive(Debug, thiserror::Error)]
#[error("incident {id}: {problem}")]
pub struct MappingError {
    pub id: String,
    pub problem: String,
}

pub(super) fn parse_time(value: Option<&Value>) -> Option<DateTime<Utc>> {
    value
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

pub(super) fn enum_value(value: Option<&Value>) -> Option<String> {
    let text = value?.as_str()?;
    let mut chars = text.chars();
    let first = chars.next()?;
    Some(first.to_lowercase().chain(chars).collect())
}

/// `camelCase` (Graph) or `PascalCase` (Log Analytics columns) → `snake_case`, for the keys
/// SoCMate passes through unchanged.
pub(super) fn snake(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            if !out.is_empty() {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A list of objects (comments) with `snake_case` keys, like every other field SoCMate shows.
fn snake_keys(list: &Value) -> Value {
    match list {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| match item {
                    Value::Object(fields) => {
                        Value::Object(fields.iter().map(|(k, v)| (snake(k), v.clone())).collect())
                    }
                    other => other.clone(),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Maps one Graph incident; a record without an id or a readable `lastUpdateDateTime` is
/// rejected on its own, not with its whole page. `tenant_id` is Graph's `tenantId`, or
/// `fallback_tenant` where Graph leaves it empty.
pub fn map_incident(incident: &Value, fallback_tenant: &str) -> Result<Incident, MappingError> {
    let object = incident.as_object().ok_or_else(|| MappingError {
        id: "?".into(),
        problem: "not a JSON object".into(),
    })?;
    let external_id = match object.get("id") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 200 => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(MappingError {
                id: "?".into(),
                problem: "no id".into(),
            });
        }
    };
    let last_update = parse_time(object.get("lastUpdateDateTime")).ok_or_else(|| MappingError {
        id: external_id.clone(),
        problem: "no readable lastUpdateDateTime".into(),
    })?;
    let created = parse_time(object.get("createdDateTime"));
    let status = enum_value(object.get("status"));
    let severity = enum_value(object.get("severity"));

    let tenant_id = object
        .get("tenantId")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .unwrap_or(fallback_tenant);
    let mut data = Map::new();
    data.insert("tenant_id".into(), Value::String(tenant_id.to_owned()));
    // Graph's incidents are tenant-wide: it names no workspace.
    data.insert("scope".into(), Value::String("tenant".into()));
    data.insert(
        "origin".into(),
        Value::String("Defender XDR (tenant-wide)".into()),
    );
    for (key, value) in object {
        let renamed = match key.as_str() {
            "id" | "tenantId" | "alerts" => continue,
            k if k.starts_with('@') => continue,
            "lastUpdateDateTime" => "last_update_at".to_owned(),
            "createdDateTime" => "created_at".to_owned(),
            "status" | "severity" | "classification" | "determination" => {
                data.insert(
                    key.clone(),
                    enum_value(Some(value)).map_or(Value::Null, Value::String),
                );
                continue;
            }
            // Graph's own doc examples say `tags` where the schema says `customTags`.
            "tags" => "custom_tags".to_owned(),
            "comments" => {
                data.insert("comments".into(), snake_keys(value));
                continue;
            }
            other => snake(other),
        };
        data.insert(renamed, value.clone());
    }
    for key in ["custom_tags", "system_tags", "comments"] {
        data.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    }

    let alerts = object
        .get("alerts")
        .and_then(Value::as_array)
        .map(|alerts| alerts.iter().filter_map(map_alert).collect())
        .unwrap_or_default();
    let mut incident = Incident {
        external_id,
        status,
        severity,
        last_update,
        created,
        tenant_id: Some(tenant_id.to_ascii_lowercase()),
        sources: Vec::new(),
        title: text_field(&data, "display_name"),
        owner: text_field(&data, "assigned_to"),
        data: Value::Object(data),
        alerts,
    };
    label_sources(&mut incident);
    Ok(incident)
}

/// Records the products of an incident's alerts: `sources` (their `serviceSource`, filterable)
/// and `detection_sources` (their `detectionSource`), in the incident and its data.
pub fn label_sources(incident: &mut Incident) {
    let distinct = |field: &str| {
        let mut values: Vec<String> = incident
            .alerts
            .iter()
            .filter_map(|a| a.data.get(field).and_then(Value::as_str))
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect();
        values.sort();
        values.dedup();
        values
    };
    let sources = distinct("service_source");
    let detection = distinct("detection_source");
    let labels: Vec<&str> = sources.iter().map(|s| product_label(s)).collect();
    if let Some(data) = incident.data.as_object_mut() {
        data.insert("sources".into(), Value::from(sources.clone()));
        data.insert("source_labels".into(), Value::from(labels));
        data.insert("detection_sources".into(), Value::from(detection));
    }
    incident.sources = sources;
}

/// How the console names a product (Graph's `serviceSource` values); others keep their code.
pub(super) fn product_label(service_source: &str) -> &str {
    match service_source {
        "microsoftSentinel" => "Microsoft Sentinel",
        "microsoftDefenderForEndpoint" => "Defender for Endpoint",
        "microsoftDefenderForOffice365" => "Defender for Office 365",
        "microsoftDefenderForIdentity" => "Defender for Identity",
        "microsoftDefenderForCloudApps" => "Defender for Cloud Apps",
        "microsoftDefenderForCloud" => "Defender for Cloud",
        "azureAdIdentityProtection" => "Entra ID Protection",
        "dataLossPrevention" => "Data Loss Prevention",
        other => other,
    }
}

pub fn map_alert(alert: &Value) -> Option<Alert> {
    let object = alert.as_object()?;
    let external_id = object.get("id")?.as_str()?.to_owned();
    let last_update = parse_time(object.get("lastUpdateDateTime"))
        .or_else(|| parse_time(object.get("createdDateTime")))?;
    let mut data = Map::new();
    if let Some(source) = object.get("serviceSource").and_then(Value::as_str) {
        data.insert(
            "product".into(),
            Value::String(product_label(source).to_owned()),
        );
    }
    for (key, value) in object {
        let renamed = match key.as_str() {
            "id" => "external_id".to_owned(),
            k if k.starts_with('@') => continue,
            "lastUpdateDateTime" => "last_update_at".to_owned(),
            "createdDateTime" => "created_at".to_owned(),
            other => snake(other),
        };
        data.insert(renamed, value.clone());
    }
    Some(Alert {
        external_id,
        last_update,
        data: Value::Object(data),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_graph_fixture_incidents() {
        for fixture in [
            "graph-incidents-list-xsoar-testdata.json",
            "graph-incidents-list-docs-example1.json",
            "graph-incidents-list-expand-alerts-docs.json",
        ] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../azure-emulator/fixtures")
                .join(fixture);
            let page: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            for incident in page["value"].as_array().unwrap() {
                let mapped =
                    map_incident(incident, "tenant").unwrap_or_else(|e| panic!("{fixture}: {e}"));
                assert!(!mapped.external_id.is_empty());
                let data = mapped.data.as_object().unwrap();
                for key in [
                    "tenant_id",
                    "display_name",
                    "status",
                    "severity",
                    "last_update_at",
                    "custom_tags",
                    "system_tags",
                    "comments",
                ] {
                    assert!(
                        data.contains_key(key),
                        "{fixture}: {key} missing in {data:?}"
                    );
                }
                let lower = |k: &String| !k.chars().any(|c| c.is_ascii_uppercase());
                assert!(data.keys().all(lower), "{data:?}");
                for comment in data["comments"].as_array().unwrap() {
                    assert!(comment.as_object().unwrap().keys().all(lower), "{comment}");
                }
                let status = data["status"].as_str().unwrap();
                assert!(
                    status.starts_with(|c: char| c.is_ascii_lowercase()),
                    "{status}"
                );
            }
        }
    }

    #[test]
    fn unknown_enum_values_are_kept_and_bad_records_rejected_alone() {
        let mapped = map_incident(&serde_json::json!({"id": "7", "status": "brandNewStatus", "lastUpdateDateTime": "2026-01-01T00:00:00.1234567Z"}), "t").unwrap();
        assert_eq!(mapped.status.as_deref(), Some("brandNewStatus"));
        let commented = map_incident(&serde_json::json!({"id": "9", "lastUpdateDateTime": "2026-01-01T00:00:00Z", "comments": [{"comment": "isolated", "createdByDisplayName": "Kai", "createdDateTime": "2026-01-01T00:00:00Z"}]}), "t").unwrap();
        assert_eq!(
            commented.data["comments"][0]["created_by_display_name"],
            "Kai"
        );
        assert_eq!(
            mapped.data["last_update_at"], "2026-01-01T00:00:00.1234567Z",
            "Graph's own text is kept"
        );
        assert!(map_incident(&serde_json::json!({"id": "8"}), "t").is_err());
        assert!(
            map_incident(
                &serde_json::json!({"lastUpdateDateTime": "2026-01-01T00:00:00Z"}),
                "t"
            )
            .is_err()
        );
    }
}
