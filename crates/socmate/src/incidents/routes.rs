//! `/api/incidents` (admins and analysts) and `/api/admin/siem-providers/{id}/sync`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store::{self, IncidentFilter, IncidentRow};
use super::sync::IncidentSync;
use crate::http::{ApiError, AppQuery, page};
use crate::siem::incidents::nanos;

pub fn router() -> OpenApiRouter<IncidentSync> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(detail))
}

/// Routes merged into `/api/admin/siem-providers`.
pub fn admin_routes() -> OpenApiRouter<IncidentSync> {
    OpenApiRouter::new().routes(routes!(trigger, status))
}

const TAG: &str = "Incidents";
const MAX_SEARCH_CHARS: usize = 200;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page; it continues that listing (its sort wins over `sort`).
    #[param(
        pattern = r"^(-?[0-9]{1,19}|c-?[0-9]{1,19}|s-?[0-9]{1,19}\.-?[0-9]{1,19})\.[0-9a-f]{24}$"
    )]
    cursor: Option<String>,
    /// The order, newest first: `updated` (default), `created` or `severity` (high first).
    #[param(inline)]
    sort: Option<store::IncidentSort>,
    /// Only incidents whose title contains this text (any case), at most 200 characters.
    #[param(max_length = 200)]
    search: Option<String>,
    /// Only incidents assigned to this user (e.g. `kai@contoso.com`; any case).
    owner: Option<String>,
    /// Status as the SIEM reports it (e.g. active, inProgress, resolved); merged incidents show
    /// only under `redirected`.
    status: Option<String>,
    /// Severity as the SIEM reports it (e.g. informational, low, medium, high).
    severity: Option<String>,
    /// Only incidents of the collection this provider reads (for Sentinel through Graph: its
    /// tenant's Defender XDR incidents, which other providers of that tenant share).
    provider_id: Option<String>,
    /// Only incidents of this organisation (Sentinel: the tenant id, as Entra ID names it).
    tenant_id: Option<String>,
    /// Only incidents with an alert from this product (Sentinel: the alerts' `serviceSource`,
    /// e.g. `microsoftSentinel`, `microsoftDefenderForEndpoint`).
    source: Option<String>,
    /// Only incidents updated at or after this RFC 3339 time.
    #[param(format = DateTime)]
    updated_since: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct IncidentList {
    /// Incidents as their SIEM sent them (snake_case fields), plus `id` (ours) and
    /// `external_id` (the SIEM's id).
    #[schema(value_type = Vec<Object>)]
    incidents: Vec<Value>,
    /// How many incidents match the filters, counted up to 1,000.
    total: i64,
    /// More than `total` incidents match (counting stopped at 1,000).
    total_capped: bool,
    next_cursor: Option<String>,
    /// How current the stored incidents are.
    synced: store::Freshness,
}

#[derive(Serialize, ToSchema)]
struct SyncStarted {
    message: String,
}

fn render(row: &IncidentRow) -> Value {
    let mut incident = serde_json::Map::new();
    incident.insert("id".into(), Value::String(row.id.clone()));
    incident.insert("external_id".into(), Value::String(row.external_id.clone()));
    if let Ok(Value::Object(data)) = serde_json::from_str::<Value>(&row.data) {
        incident.extend(data);
    }
    Value::Object(incident)
}

/// List synced incidents, newest first (by last update unless `sort` says otherwise).
#[utoipa::path(get, path = "", tag = TAG, params(ListQuery),
    responses((status = 200, description = "One page of incidents", body = IncidentList)))]
async fn list(
    State(sync): State<IncidentSync>,
    AppQuery(q): AppQuery<ListQuery>,
) -> Result<Json<IncidentList>, ApiError> {
    let limit = page::limit(q.limit, 200)?;
    // A cursor continues the listing it came from, whatever `sort` says.
    let sort = match q.cursor.as_deref() {
        Some(c) => store::IncidentSort::of_cursor(c),
        None => q.sort.unwrap_or_default(),
    };
    let after = q
        .cursor
        .as_deref()
        .map(|c| sort.position(c).ok_or_else(page::invalid_cursor))
        .transpose()?;
    let title_contains = match q.search.as_deref().map(str::trim) {
        Some(text) if text.chars().count() > MAX_SEARCH_CHARS => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_search",
                format!("search must be at most {MAX_SEARCH_CHARS} characters"),
            ));
        }
        Some(text) if !text.is_empty() => Some(text.to_lowercase()),
        _ => None,
    };
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
        tenant_id: q.tenant_id.map(|t| t.to_ascii_lowercase()),
        source: q.source,
        owner: q
            .owner
            .map(|o| o.trim().to_lowercase())
            .filter(|o| !o.is_empty()),
        title_contains,
        updated_since_ns,
        sort,
        after,
        limit: limit + 1,
    };
    let (mut rows, total, total_capped) = store::list_incidents(sync.db(), &filter).await?;
    let next_cursor = page::next_cursor(&mut rows, limit, |r| sort.cursor(r));
    Ok(Json(IncidentList {
        incidents: rows.iter().map(render).collect(),
        total,
        total_capped,
        next_cursor,
        synced: store::freshness(sync.db()).await?,
    }))
}

/// One incident with its alerts and the providers that read its collection.
#[utoipa::path(get, path = "/{id}", tag = TAG, params(("id" = String, Path, description = "Incident id (ours)")),
    responses((status = 200, description = "The incident as its SIEM sent it, plus `alerts` and `provider_ids`", body = Object)))]
async fn detail(
    State(sync): State<IncidentSync>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = store::get_incident(sync.db(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no incident with this id"))?;
    let mut incident = render(&row);
    let alerts: Vec<Value> = store::incident_alerts(sync.db(), &row.scope, &row.external_id)
        .await?
        .iter()
        .filter_map(|a| serde_json::from_str(a).ok())
        .collect();
    let providers = store::incident_providers(sync.db(), &row.scope).await?;
    if let Some(object) = incident.as_object_mut() {
        object.insert("alerts".into(), Value::Array(alerts));
        object.insert("provider_ids".into(), serde_json::json!(providers));
    }
    Ok(Json(incident))
}

/// Start an incident sync of a provider now.
#[utoipa::path(post, path = "/{id}/sync", tag = "SIEM providers (admin)",
    params(("id" = String, Path, description = "Provider id")),
    responses((status = 202, description = "Started", body = SyncStarted)))]
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
        Json(SyncStarted {
            message: format!("incident sync of '{}' started", provider.name),
        }),
    ))
}

/// A provider's incident sync status.
#[utoipa::path(get, path = "/{id}/sync", tag = "SIEM providers (admin)",
    params(("id" = String, Path, description = "Provider id")),
    responses((status = 200, description = "The sync status", body = store::SyncStatus)))]
async fn status(
    State(sync): State<IncidentSync>,
    Path(id): Path<String>,
) -> Result<Json<store::SyncStatus>, ApiError> {
    let provider = sync.providers().get(&id).await?;
    Ok(Json(store::status(sync.db(), &provider.id).await?))
}
