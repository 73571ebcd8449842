//! The workspace's own Sentinel tables as an incident source: `SecurityIncident` and
//! `SecurityAlert`, read through the Log Analytics query API with the access queries already
//! need (Log Analytics Reader or Microsoft Sentinel Reader on the workspace).
//!
//! These tables hold every Sentinel incident of the workspace — also those Graph never lists:
//! workspaces not onboarded to the Defender portal, and incidents created by API, playbook or by
//! hand (azure-docs `sentinel/move-to-defender.md`). They hold **a row per change** of an incident
//! ("Every time you create or update an incident, a new log entry will be added to the table",
//! azure-docs `sentinel/manage-soc-with-incident-metrics.md`), so every read takes each
//! incident's latest row (`arg_max(LastModifiedTime, *)`), and they keep rows only as long as the
//! workspace's retention (30 days by default, 90 free for Sentinel workspaces): an incident last
//! changed before that is gone from them.
//!
//! Columns and types: azure-reference-other `azure-monitor-ref/tables/securityincident.md` and
//! `securityalert.md`. Every KQL text SoCMate sends lives in [`kql`].

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::SentinelConnection;
use super::incidents::{MappingError, enum_value, label_sources, parse_time, product_label, snake};
use crate::siem::retry::with_retries;
use crate::siem::{
    Alert, FetchError, Incident, IncidentSink, QueryError, QueryRequest, ReadReport, SyncWindow,
    text_field,
};

/// Incidents a page: their rows carry alert lists and comments, so pages stay modest.
pub const PAGE: usize = 200;
/// Alert ids a query asks for (a `SystemAlertId in (…)` list of GUIDs stays a few KiB).
const ALERT_IDS_PER_QUERY: usize = 200;
/// Sentinel puts at most 150 alerts in one incident; more ids than that are not a real row.
const MAX_ALERTS_PER_INCIDENT: usize = 150;
/// How long one table query may run on Log Analytics.
const QUERY_TIMEOUT: Duration = Duration::from_secs(120);
/// How far back the connection test looks for incidents Graph does not list.
pub const FIT_DAYS: u32 = 30;

/// The KQL SoCMate sends to a workspace's Sentinel tables.
pub mod kql {
    use chrono::{DateTime, SecondsFormat, Utc};

    /// A page of incidents changed since `since`, each at its latest row, in
    /// `(LastModifiedTime, IncidentNumber)` order after the keyset `after` (numbers are unique
    /// in a workspace, so the order is total). No upper bound: a change stamped ahead of
    /// SoCMate's clock is still read.
    pub fn incidents_page(
        since: DateTime<Utc>,
        after: Option<(DateTime<Utc>, i64)>,
        page: usize,
    ) -> String {
        let keyset = match after {
            Some((at, number)) => format!(
                "\n| where LastModifiedTime > {at} or (LastModifiedTime == {at} and IncidentNumber > {number})",
                at = datetime(at)
            ),
            None => String::new(),
        };
        format!(
            "SecurityIncident\n| where LastModifiedTime >= {since}\n| summarize arg_max(LastModifiedTime, *) by IncidentName{keyset}\n| order by LastModifiedTime asc, IncidentNumber asc\n| take {page}",
            since = datetime(since)
        )
    }

    /// The latest row of each of these alerts.
    pub fn alerts(ids: &[String]) -> String {
        let list: Vec<String> = ids.iter().map(|id| string(id)).collect();
        format!(
            "SecurityAlert\n| where SystemAlertId in ({})\n| summarize arg_max(TimeGenerated, *) by SystemAlertId",
            list.join(", ")
        )
    }

    /// How many incidents changed in the last `days` are Sentinel's own, not Defender XDR's —
    /// the ones Graph does not list. Onboarded workspaces' incidents carry `ProviderName`
    /// "Microsoft Defender XDR" (Azure/Azure-Sentinel#10446); those Defender XDR never received
    /// keep Sentinel's name.
    pub fn not_in_defender_xdr(days: u32) -> String {
        format!(
            "SecurityIncident\n| where LastModifiedTime > ago({days}d)\n| summarize arg_max(LastModifiedTime, *) by IncidentName\n| where ProviderName in (\"Azure Sentinel\", \"Microsoft Sentinel\")\n| count"
        )
    }

    /// Proves a table can be read, without reading it.
    pub fn probe(table: &str) -> String {
        format!("{table}\n| take 1\n| count")
    }

    /// A `datetime()` literal at full precision (Log Analytics keeps 100 ns ticks).
    fn datetime(t: DateTime<Utc>) -> String {
        format!(
            "datetime({})",
            t.to_rfc3339_opts(SecondsFormat::Nanos, true)
        )
    }

    /// A double-quoted KQL string literal.
    fn string(text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 2);
        out.push('"');
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_texts_sent() {
            let at: DateTime<Utc> = "2026-03-01T10:00:00.1234567Z"
                .parse()
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                incidents_page(at, Some((at, 42)), 200),
                "SecurityIncident\n\
                 | where LastModifiedTime >= datetime(2026-03-01T10:00:00.123456700Z)\n\
                 | summarize arg_max(LastModifiedTime, *) by IncidentName\n\
                 | where LastModifiedTime > datetime(2026-03-01T10:00:00.123456700Z) or (LastModifiedTime == datetime(2026-03-01T10:00:00.123456700Z) and IncidentNumber > 42)\n\
                 | order by LastModifiedTime asc, IncidentNumber asc\n\
                 | take 200"
            );
            assert_eq!(
                alerts(&["a".into(), "b\"c\\".into()]),
                "SecurityAlert\n| where SystemAlertId in (\"a\", \"b\\\"c\\\\\")\n| summarize arg_max(TimeGenerated, *) by SystemAlertId"
            );
            assert!(not_in_defender_xdr(30).contains("ago(30d)"));
        }
    }
}

/// One table of a query answer, in SoCMate's table JSON.
#[derive(Debug, Deserialize)]
struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
struct Column {
    name: String,
}

impl Table {
    fn records(self) -> impl Iterator<Item = Map<String, Value>> {
        let names: Vec<String> = self.columns.into_iter().map(|c| c.name).collect();
        self.rows
            .into_iter()
            .map(move |row| names.iter().cloned().zip(row).collect())
    }
}

impl SentinelConnection {
    /// Every incident of the workspace changed in the window, at its latest row, with its alerts.
    pub(super) async fn read_workspace_incidents(
        &self,
        window: SyncWindow,
        sink: &mut dyn IncidentSink,
    ) -> Result<ReadReport, FetchError> {
        let tenant = self
            .known_tenant()
            .unwrap_or_else(|| self.credentials.tenant_id.to_ascii_lowercase());
        let mut after = None;
        let mut missing_alerts = 0usize;
        loop {
            let query = kql::incidents_page(window.since, after, PAGE);
            let records = self
                .read_table(&query, window.since, window.until, window.deadline)
                .await?;
            let full_page = records.len() >= PAGE;
            let mut batch = Vec::with_capacity(records.len());
            let mut alert_ids = Vec::new();
            let previous = after;
            for record in records {
                if let Some(at) = parse_time(record.get("LastModifiedTime")) {
                    after = Some((at, incident_number(&record)));
                }
                match map_incident(&record, &tenant, &self.credentials.workspace_id) {
                    Ok((incident, ids)) => {
                        alert_ids.extend(ids.iter().cloned());
                        batch.push((incident, ids));
                    }
                    Err(e) => sink.skip(e.to_string()),
                }
            }
            if full_page && after == previous {
                return Err(FetchError::Unreadable(
                    "a full page of SecurityIncident rows had no readable LastModifiedTime".into(),
                ));
            }
            let earliest = batch
                .iter()
                .filter_map(|(i, _)| i.created)
                .min()
                .unwrap_or(window.since);
            let mut alerts = self
                .read_alerts(&alert_ids, earliest, window.until, window.deadline)
                .await?;
            let incidents = batch
                .into_iter()
                .map(|(mut incident, ids)| {
                    for id in ids {
                        match alerts.remove(&id) {
                            Some(alert) => incident.alerts.push(alert),
                            None => missing_alerts += 1,
                        }
                    }
                    label_sources(&mut incident);
                    incident
                })
                .collect();
            sink.put(incidents).await?;
            if !full_page {
                break;
            }
        }
        if missing_alerts > 0 {
            sink.note(format!(
                "{missing_alerts} alerts named by incidents were not in the SecurityAlert table \
                 (older than the workspace's retention, or not yet ingested)"
            ));
        }
        Ok(ReadReport::default())
    }

    /// The latest row of each alert, by `SystemAlertId`.
    async fn read_alerts(
        &self,
        ids: &[String],
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        deadline: Instant,
    ) -> Result<HashMap<String, Alert>, FetchError> {
        let mut unique = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let mut alerts = HashMap::with_capacity(unique.len());
        for chunk in unique.chunks(ALERT_IDS_PER_QUERY) {
            // Alerts come before their incident; a day's margin covers clock skew.
            let records = self
                .read_table(
                    &kql::alerts(chunk),
                    from - TimeDelta::days(1),
                    until,
                    deadline,
                )
                .await?;
            for record in records {
                if let Some(alert) = map_alert(&record) {
                    alerts.insert(alert.external_id.clone(), alert);
                }
            }
        }
        Ok(alerts)
    }

    /// Runs one query on the tables, its rows as column → value maps. Rows are filtered by the
    /// query itself; the timespan (which bounds `TimeGenerated`, the row's ingestion) only keeps
    /// Log Analytics from scanning the whole retention.
    async fn read_table(
        &self,
        query: &str,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        deadline: Instant,
    ) -> Result<Vec<Map<String, Value>>, FetchError> {
        let timespan = format!(
            "{}/{}",
            from.to_rfc3339_opts(SecondsFormat::Secs, true),
            (until + TimeDelta::days(1)).to_rfc3339_opts(SecondsFormat::Secs, true)
        );
        let result = with_retries(deadline, || async {
            let timeout = deadline
                .saturating_duration_since(Instant::now())
                .min(QUERY_TIMEOUT);
            if timeout.is_zero() {
                return Err(FetchError::Timeout);
            }
            let result = self
                .run_query(QueryRequest {
                    query: query.to_owned(),
                    timespan: timespan.clone(),
                    timeout,
                    row_cap: usize::MAX,
                })
                .await
                .map_err(table_error)?;
            result.collect().await.map_err(table_error)
        })
        .await?;
        if let Some(error) = result.summary.partial_error {
            // Partial rows would move the watermark past incidents never read.
            return Err(FetchError::Unreadable(format!(
                "Log Analytics returned partial results: {}",
                error.get("message").and_then(Value::as_str).unwrap_or("")
            )));
        }
        let tables: Vec<Table> = serde_json::from_slice(&result.tables_json)
            .map_err(|e| FetchError::Unreadable(format!("query result: {e}")))?;
        Ok(tables
            .into_iter()
            .next()
            .map(|t| t.records().collect())
            .unwrap_or_default())
    }

    /// How many incidents of the last [`FIT_DAYS`] days the workspace holds that Defender XDR,
    /// and so Graph, does not; `None` where the workspace has no Sentinel tables or the count
    /// could not be had (the connection test then says nothing about the fit).
    pub(super) async fn incidents_missing_from_graph(&self, deadline: Instant) -> Option<u64> {
        let now = Utc::now();
        let records = self
            .read_table(
                &kql::not_in_defender_xdr(FIT_DAYS),
                now - TimeDelta::days(i64::from(FIT_DAYS)),
                now,
                deadline,
            )
            .await;
        match records {
            Ok(records) => records
                .first()
                .and_then(|r| r.get("Count"))
                .and_then(Value::as_u64),
            Err(e) => {
                tracing::debug!(error = %e, workspace_id = %self.credentials.workspace_id, "cannot count the workspace's incidents missing from Graph");
                None
            }
        }
    }

    /// Proves a Sentinel table of the workspace can be read.
    pub(super) async fn probe_table(
        &self,
        table: &str,
        deadline: Instant,
    ) -> Result<(), FetchError> {
        let now = Utc::now();
        self.read_table(&kql::probe(table), now - TimeDelta::days(1), now, deadline)
            .await
            .map(drop)
    }
}

/// The code of a workspace without the Sentinel tables.
const NO_TABLE_CODE: &str = "no_sentinel_tables";

fn table_error(error: QueryError) -> FetchError {
    match error {
        QueryError::Invalid { message, .. } if message.contains("Failed to resolve table") => {
            FetchError::Denied {
                code: NO_TABLE_CODE,
                hint: "The workspace has no Microsoft Sentinel tables (SecurityIncident, \
                       SecurityAlert): Sentinel is not enabled on it, or it has not recorded an \
                       incident yet. Check the workspace ID, or enable Microsoft Sentinel on \
                       this workspace."
                    .into(),
            }
        }
        QueryError::Invalid { message, .. } => FetchError::Unreadable(message),
        QueryError::Denied { code, hint } => FetchError::Denied { code, hint },
        QueryError::Throttled { retry_after } => FetchError::Throttled { retry_after },
        QueryError::Timeout(_) => FetchError::Timeout,
        QueryError::Unavailable(cause) => FetchError::Unavailable(cause),
        QueryError::Unreadable(cause) => FetchError::Unreadable(cause),
    }
}

fn incident_number(record: &Map<String, Value>) -> i64 {
    record
        .get("IncidentNumber")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn text<'a>(record: &'a Map<String, Value>, column: &str) -> Option<&'a str> {
    record
        .get(column)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Maps an incident's latest `SecurityIncident` row, and the alert ids it names. `tenant` is the
/// tenant's id (the row's `TenantId` is the workspace's, as in every Log Analytics table).
fn map_incident(
    record: &Map<String, Value>,
    tenant: &str,
    workspace_id: &str,
) -> Result<(Incident, Vec<String>), MappingError> {
    let external_id = text(record, "IncidentName")
        .filter(|name| name.len() <= 200)
        .ok_or_else(|| MappingError {
            id: "?".into(),
            problem: "no IncidentName".into(),
        })?
        .to_owned();
    let last_update = parse_time(record.get("LastModifiedTime")).ok_or_else(|| MappingError {
        id: external_id.clone(),
        problem: "no readable LastModifiedTime".into(),
    })?;
    let alert_ids: Vec<String> = record
        .get("AlertIds")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .take(MAX_ALERTS_PER_INCIDENT)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();

    let mut data = Map::new();
    data.insert("tenant_id".into(), Value::String(tenant.to_owned()));
    data.insert(
        "workspace_id".into(),
        Value::String(workspace_id.to_ascii_lowercase()),
    );
    // Read from this workspace's own tables.
    data.insert("scope".into(), Value::String("workspace".into()));
    data.insert(
        "origin".into(),
        Value::String(format!("Workspace {}", workspace_id.to_ascii_lowercase())),
    );
    for (column, value) in record {
        let key = match column.as_str() {
            "TenantId" | "TimeGenerated" | "SourceSystem" | "Type" | "AlertIds" => continue,
            "Title" => "display_name".to_owned(),
            "LastModifiedTime" => "last_update_at".to_owned(),
            "CreatedTime" => "created_at".to_owned(),
            "IncidentUrl" => "incident_web_url".to_owned(),
            "Status" | "Severity" | "Classification" => {
                let value = enum_value(Some(value)).map_or(Value::Null, Value::String);
                data.insert(snake(column), value);
                continue;
            }
            "Owner" => {
                let owner = ["assignedTo", "userPrincipalName", "email"]
                    .iter()
                    .find_map(|k| value.get(k).and_then(Value::as_str))
                    .filter(|s| !s.is_empty());
                data.insert(
                    "assigned_to".into(),
                    owner.map_or(Value::Null, |o| Value::String(o.to_owned())),
                );
                "owner".to_owned()
            }
            "Labels" => {
                let tags: Vec<Value> = value
                    .as_array()
                    .map(|labels| {
                        labels
                            .iter()
                            .filter_map(|l| l.get("labelName").cloned())
                            .collect()
                    })
                    .unwrap_or_default();
                data.insert("custom_tags".into(), Value::Array(tags));
                continue;
            }
            "Comments" => {
                data.insert("comments".into(), Value::Array(comments(value)));
                continue;
            }
            other => snake(other),
        };
        data.insert(key, value.clone());
    }
    for key in ["custom_tags", "comments"] {
        data.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    }
    let incident = Incident {
        external_id,
        status: enum_value(record.get("Status")),
        severity: enum_value(record.get("Severity")),
        last_update,
        created: parse_time(record.get("CreatedTime")),
        tenant_id: Some(tenant.to_ascii_lowercase()),
        sources: Vec::new(),
        title: text_field(&data, "display_name"),
        owner: text_field(&data, "assigned_to"),
        data: Value::Object(data),
        alerts: Vec::new(),
    };
    Ok((incident, alert_ids))
}

/// Comments in the shape Graph's incidents give them (snake_cased), so both sources read alike.
fn comments(value: &Value) -> Vec<Value> {
    value
        .as_array()
        .map(|list| {
            list.iter()
                .map(|c| {
                    serde_json::json!({
                        "comment": c.get("message"),
                        "created_by_display_name": c.pointer("/author/name"),
                        "created_date_time": c.get("createdTimeUtc"),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Maps an alert's latest `SecurityAlert` row; `service_source` names its product as Graph's
/// `serviceSource` does, so incidents of both sources filter alike.
fn map_alert(record: &Map<String, Value>) -> Option<Alert> {
    let external_id = text(record, "SystemAlertId")?.to_owned();
    let last_update = parse_time(record.get("TimeGenerated"))?;
    let mut data = Map::new();
    data.insert("external_id".into(), Value::String(external_id.clone()));
    for (column, value) in record {
        let key = match column.as_str() {
            "SystemAlertId" | "TenantId" | "SourceSystem" | "Type" => continue,
            "DisplayName" => "title".to_owned(),
            "TimeGenerated" => "last_update_at".to_owned(),
            "AlertSeverity" => {
                let severity = enum_value(Some(value)).map_or(Value::Null, Value::String);
                data.insert("severity".into(), severity);
                continue;
            }
            "Status" => {
                let status = enum_value(Some(value)).map_or(Value::Null, Value::String);
                data.insert("status".into(), status);
                continue;
            }
            other => snake(other),
        };
        data.insert(key, value.clone());
    }
    if let Some(product) = text(record, "ProductName") {
        let source = service_source(product);
        data.insert("service_source".into(), Value::String(source.to_owned()));
        data.insert(
            "product".into(),
            Value::String(product_label(source).to_owned()),
        );
    }
    Some(Alert {
        external_id,
        last_update,
        data: Value::Object(data),
    })
}

/// Graph's `serviceSource` for a `SecurityAlert.ProductName`; other products keep their name.
fn service_source(product: &str) -> &str {
    match product {
        "Azure Sentinel" | "Microsoft Sentinel" => "microsoftSentinel",
        "Microsoft Defender Advanced Threat Protection" => "microsoftDefenderForEndpoint",
        "Office 365 Advanced Threat Protection" => "microsoftDefenderForOffice365",
        "Azure Active Directory Identity Protection" => "azureAdIdentityProtection",
        "Microsoft Cloud App Security" => "microsoftDefenderForCloudApps",
        "Azure Advanced Threat Protection" => "microsoftDefenderForIdentity",
        "Microsoft Data Loss Prevention" => "dataLossPrevention",
        "Azure Security Center" | "Microsoft Defender for Cloud" => "microsoftDefenderForCloud",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_row_becomes_an_incident_shaped_like_graphs() {
        let Value::Object(row) = json!({
            "TenantId": "c0ffee00-0000-4000-8000-00000000beef",
            "IncidentName": "0a1b2c3d-0000-4000-8000-000000000001",
            "IncidentNumber": 7,
            "Title": "Brute force",
            "Status": "Closed",
            "Severity": "High",
            "Classification": "TruePositive",
            "LastModifiedTime": "2026-03-01T10:00:00.1234567Z",
            "CreatedTime": "2026-03-01T09:00:00Z",
            "Owner": {"objectId": null, "assignedTo": "kai@contoso.com"},
            "Labels": [{"labelName": "vip", "labelType": "User"}],
            "Comments": [{"message": "done", "createdTimeUtc": "2026-03-01T10:00:00Z", "author": {"name": "Kai"}}],
            "AlertIds": ["a1", "a2"],
            "ProviderName": "Azure Sentinel",
        }) else {
            unreachable!()
        };
        let (incident, alerts) = map_incident(
            &row,
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "C0FFEE00-0000-4000-8000-00000000BEEF",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(alerts, ["a1", "a2"]);
        assert_eq!(incident.status.as_deref(), Some("closed"));
        assert_eq!(incident.severity.as_deref(), Some("high"));
        let data = &incident.data;
        assert_eq!(data["display_name"], "Brute force");
        assert_eq!(data["assigned_to"], "kai@contoso.com");
        assert_eq!(data["custom_tags"], json!(["vip"]));
        assert_eq!(data["comments"][0]["comment"], "done");
        assert_eq!(data["comments"][0]["created_by_display_name"], "Kai");
        assert_eq!(data["workspace_id"], "c0ffee00-0000-4000-8000-00000000beef");
        assert_eq!(data["scope"], "workspace");
        assert_eq!(
            data["origin"],
            "Workspace c0ffee00-0000-4000-8000-00000000beef"
        );
        assert_eq!(data["incident_number"], 7);
        assert_eq!(data["last_update_at"], "2026-03-01T10:00:00.1234567Z");
        assert!(
            data.as_object()
                .is_some_and(|d| d.keys().all(|k| !k.chars().any(|c| c.is_ascii_uppercase()))),
            "{data}"
        );
        let Value::Object(no_name) = json!({"LastModifiedTime": "2026-03-01T10:00:00Z"}) else {
            unreachable!()
        };
        assert!(map_incident(&no_name, "t", "w").is_err());
    }
}
