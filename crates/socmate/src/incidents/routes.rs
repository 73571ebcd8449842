//! `/api/incidents` (admins and analysts) and `/api/admin/siem-providers/{id}/sync`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::nanos;
use super::store::{self, IncidentFilter, IncidentRow};
use super::sync::IncidentSync;
use crate::http::{ApiError, page};

pub fn router() -> Router<IncidentSync> {
    Router::new()
        .route("/", get(list))
        .route("/{id}", get(detail))
}

/// Routes merged into `/api/admin/siem-providers`.
pub fn admin_routes() -> Router<IncidentSync> {
    Router::new().route("/{id}/sync", post(trigger).get(status))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    status: Option<String>,
    severity: Option<String>,
    provider_id: Option<String>,
    updated_since: Option<String>,
}

#[derive(Serialize)]
struct IncidentList {
    incidents: Vec<Value>,
    total: i64,
    next_cursor: Option<String>,
}

fn render(row: &IncidentRow) -> Value {
    let mut data = serde_json::from_str::<Value>(&row.data)
        .unwrap_or_else(|_| Value::Object(Default::default()));
    if let Some(object) = data.as_object_mut() {
        object.insert("id".into(), Value::String(row.id.clone()));
        object.insert("tenant_id".into(), Value::String(row.tenant_id.clone()));
        object.insert("external_id".into(), Value::String(row.external_id.clone()));
    }
    data
}

async fn list(
    State(sync): State<IncidentSync>,
    Query(q): Query<ListQuery>,
) -> Result<Json<IncidentList>, ApiError> {
    let limit = page::limit(q.limit, 200)?;
    let before = q
        .cursor
        .as_deref()
        .map(|c| {
            let (ns, id) = c.split_once('.').ok_or_else(page::invalid_cursor)?;
            Ok::<_, ApiError>((
                ns.parse::<i64>().map_err(|_| page::invalid_cursor())?,
                id.to_owned(),
            ))
        })
        .transpose()?;
    let updated_since_ns = match q.updated_since.as_deref() {
        None => None,
        Some(t) => Some(nanos(
            DateTime::parse_from_rfc3339(t)
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_updated_since",
                        "updated_since must be an RFC 3339 time such as 2026-11-01T00:00:00Z",
                    )
                })?
                .to_utc(),
        )),
    };
    let filter = IncidentFilter {
        status: q.status,
        severity: q.severity,
        provider_id: q.provider_id,
        updated_since_ns,
        before,
        limit: limit + 1,
    };
    let (mut rows, total) = store::list_incidents(sync.db(), &filter).await?;
    let next_cursor = page::next_cursor(&mut rows, limit, |r| {
        format!("{}.{}", r.last_update_ns, r.id)
    });
    Ok(Json(IncidentList {
        incidents: rows.iter().map(render).collect(),
        total,
        next_cursor,
    }))
}

async fn detail(
    State(sync): State<IncidentSync>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = store::get_incident(sync.db(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no incident with this id"))?;
    let mut incident = render(&row);
    let alerts: Vec<Value> = store::incident_alerts(sync.db(), &row.tenant_id, &row.external_id)
        .await?
        .iter()
        .filter_map(|a| serde_json::from_str(a).ok())
        .collect();
    let providers = store::incident_providers(sync.db(), &row.id).await?;
    if let Some(object) = incident.as_object_mut() {
        object.insert("alerts".into(), Value::Array(alerts));
        object.insert("provider_ids".into(), serde_json::json!(providers));
    }
    Ok(Json(incident))
}

async fn trigger(
    State(sync): State<IncidentSync>,
    ctx: crate::audit::AuditContext,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let provider = sync.providers().get(&id).await?;
    crate::audit::record(
        sync.db(),
        &ctx,
        "provider.sync",
        Some(&provider.id),
        "started",
        None,
    )
    .await?;
    sync.start_now(provider.id.clone());
    Ok((
        StatusCode::ACCEPTED,
        Json(
            serde_json::json!({"message": format!("incident sync of '{}' started", provider.name)}),
        ),
    ))
}

async fn status(
    State(sync): State<IncidentSync>,
    Path(id): Path<String>,
) -> Result<Json<store::SyncStatus>, ApiError> {
    let provider = sync.providers().get(&id).await?;
    Ok(Json(store::status(sync.db(), &provider.id).await?))
}
