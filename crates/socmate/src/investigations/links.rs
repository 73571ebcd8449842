//! Incidents linked to an investigation (`/api/investigations/{id}/incidents`), and the queries run
//! in it. Investigations are the team's shared case files: any signed-in user links, unlinks and
//! reads them. A link names the incident by SoCMate's id and outlives the incident row (a scope
//! merge can replace it): such a link lists with `stored: false` rather than vanishing.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Page, TAG, find};
use crate::auth::AuthUser;
use crate::http::{ApiError, AppQuery, page};
use crate::id::ResourceId;
use crate::providers::model::timestamp;
use crate::queries::{AuditEntry, AuditScope, Queries};
use crate::store::{Db, StoreError, with_db};

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct LinkedIncident {
    #[serde(skip)]
    seq: i64,
    incident_id: String,
    /// The incident is still stored (false: it was replaced, e.g. by a scope merge).
    stored: bool,
    title: Option<String>,
    severity: Option<String>,
    status: Option<String>,
    linked_by: String,
    #[serde(serialize_with = "timestamp")]
    #[schema(value_type = String, format = DateTime)]
    linked_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct LinkedIncidentPage {
    incidents: Vec<LinkedIncident>,
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct InvestigationQueryPage {
    queries: Vec<AuditEntry>,
    next_cursor: Option<String>,
}

const MAX_PAGE: i64 = 100;

/// A `SELECT` of linked incidents (the link joined to the stored incident, if any) ending in
/// `$filter`: one literal, so that the SQL stays static.
macro_rules! select_links {
    ($filter:literal) => {
        concat!(
            "SELECT l.seq, l.incident_id, i.id IS NOT NULL AS stored, i.title, i.severity, i.status, ",
            "l.linked_by, l.linked_at FROM investigation_incidents l ",
            "LEFT JOIN incidents i ON i.id = l.incident_id WHERE l.investigation_id = $1 AND ",
            $filter
        )
    };
}

fn no_investigation() -> ApiError {
    ApiError::not_found("no investigation with this id")
}

/// The incident `incident_id` names, if it is stored; else a 404 that says so.
pub(super) async fn require_incident(db: &Db, incident_id: &str) -> Result<String, ApiError> {
    let stored: Option<(String,)> = match ResourceId::parse(incident_id) {
        Some(id) => with_db!(db, |pool| sqlx::query_as(
            "SELECT id FROM incidents WHERE id = $1"
        )
        .bind(id.as_str())
        .fetch_optional(pool)
        .await
        .map_err(StoreError::from)?),
        None => None,
    };
    stored
        .map(|(id,)| id)
        .ok_or_else(|| ApiError::not_found("no stored incident with this id"))
}

/// Links a stored incident to the investigation unless it already is; `true` when this call
/// linked it.
pub(super) async fn insert_link(
    db: &Db,
    investigation_id: &str,
    incident_id: &str,
    linked_by: &str,
) -> Result<bool, StoreError> {
    let sql = "INSERT INTO investigation_incidents (investigation_id, incident_id, linked_by, linked_at) \
               VALUES ($1, $2, $3, $4) ON CONFLICT (investigation_id, incident_id) DO NOTHING";
    let inserted = with_db!(db, |pool| sqlx::query(sql)
        .bind(investigation_id)
        .bind(incident_id)
        .bind(linked_by)
        .bind(Utc::now())
        .execute(pool)
        .await?
        .rows_affected());
    Ok(inserted > 0)
}

async fn linked(
    db: &Db,
    investigation_id: &str,
    incident_id: &str,
) -> Result<Option<LinkedIncident>, StoreError> {
    let sql = select_links!("l.incident_id = $2");
    Ok(with_db!(db, |pool| sqlx::query_as(sql)
        .bind(investigation_id)
        .bind(incident_id)
        .fetch_optional(pool)
        .await?))
}

/// The incidents linked to an investigation, most recently linked first.
#[utoipa::path(get, path = "/{id}/incidents", tag = TAG, params(("id" = String, Path, description = "Investigation id"), Page),
    responses((status = 200, description = "One page of linked incidents", body = LinkedIncidentPage)))]
pub(super) async fn list_incidents(
    State(queries): State<Queries>,
    Path(id): Path<String>,
    AppQuery(page): AppQuery<Page>,
) -> Result<Json<LinkedIncidentPage>, ApiError> {
    let limit = page::limit(page.limit, MAX_PAGE)?;
    let before = page::seq_cursor(page.cursor.as_deref())?;
    let db = &queries.providers.db;
    let investigation = find(db, &id).await?.ok_or_else(no_investigation)?;
    let sql = select_links!("($2 IS NULL OR l.seq < $2) ORDER BY l.seq DESC LIMIT $3");
    let mut rows: Vec<LinkedIncident> = with_db!(db, |pool| sqlx::query_as(sql)
        .bind(&investigation.id)
        .bind(before)
        .bind(limit + 1)
        .fetch_all(pool)
        .await
        .map_err(StoreError::from)?);
    let next_cursor = page::next_cursor(&mut rows, limit, |l| l.seq.to_string());
    Ok(Json(LinkedIncidentPage {
        incidents: rows,
        next_cursor,
    }))
}

/// Link a stored incident to the investigation (idempotent: 201 when linked now, 200 when it
/// already was).
#[utoipa::path(put, path = "/{id}/incidents/{incident_id}", tag = TAG,
    params(("id" = String, Path, description = "Investigation id"), ("incident_id" = String, Path, description = "Incident id")),
    responses((status = 201, description = "Linked", body = LinkedIncident),
        (status = 200, description = "Already linked", body = LinkedIncident)))]
pub(super) async fn link_incident(
    State(queries): State<Queries>,
    user: AuthUser,
    Path((id, incident_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<LinkedIncident>), ApiError> {
    let db = &queries.providers.db;
    let investigation = find(db, &id).await?.ok_or_else(no_investigation)?;
    let incident_id = require_incident(db, &incident_id).await?;
    let created = insert_link(db, &investigation.id, &incident_id, &user.email).await?;
    let row = linked(db, &investigation.id, &incident_id)
        .await?
        .ok_or_else(|| ApiError::not_found("the link was removed meanwhile"))?;
    let status = if created {
        tracing::info!(investigation.id = %investigation.id, incident.id = %incident_id, "incident linked");
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(row)))
}

/// Unlink an incident from the investigation (the incident itself stays).
#[utoipa::path(delete, path = "/{id}/incidents/{incident_id}", tag = TAG,
    params(("id" = String, Path, description = "Investigation id"), ("incident_id" = String, Path, description = "Incident id")),
    responses((status = 204, description = "Unlinked")))]
pub(super) async fn unlink_incident(
    State(queries): State<Queries>,
    Path((id, incident_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let db = &queries.providers.db;
    let investigation = find(db, &id).await?.ok_or_else(no_investigation)?;
    let sql =
        "DELETE FROM investigation_incidents WHERE investigation_id = $1 AND incident_id = $2";
    let removed = with_db!(db, |pool| sqlx::query(sql)
        .bind(&investigation.id)
        .bind(&incident_id)
        .execute(pool)
        .await
        .map_err(StoreError::from)?
        .rows_affected());
    if removed == 0 {
        return Err(ApiError::not_found(
            "this incident is not linked to the investigation",
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The queries run in the investigation, by anyone, newest first.
#[utoipa::path(get, path = "/{id}/queries", tag = TAG, params(("id" = String, Path, description = "Investigation id"), Page),
    responses((status = 200, description = "One page of the investigation's query records", body = InvestigationQueryPage)))]
pub(super) async fn list_queries(
    State(queries): State<Queries>,
    Path(id): Path<String>,
    AppQuery(page): AppQuery<Page>,
) -> Result<Json<InvestigationQueryPage>, ApiError> {
    let limit = page::limit(page.limit, MAX_PAGE)?;
    let before = page::seq_cursor(page.cursor.as_deref())?;
    let db = &queries.providers.db;
    let investigation = find(db, &id).await?.ok_or_else(no_investigation)?;
    let mut rows = crate::queries::audit_list(
        db,
        AuditScope::Investigation(&investigation.id),
        before,
        limit + 1,
    )
    .await?;
    let next_cursor = page::next_cursor(&mut rows, limit, |q| q.seq.to_string());
    Ok(Json(InvestigationQueryPage {
        queries: rows,
        next_cursor,
    }))
}
