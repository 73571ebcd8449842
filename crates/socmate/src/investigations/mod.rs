//! Investigations pin the provider that is default when they are opened, so changing the
//! default later re-routes nothing that already exists (Grafana's "default" lesson). They hold
//! the incidents linked to them and the queries run in them (`links`).

mod links;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::http::{ApiError, AppJson, AppQuery, FieldError, page};
use crate::id::ResourceId;
use crate::providers::model::timestamp;
use crate::queries::{ProviderChoice, Queries, QueryInput, QueryResponse};
use crate::store::{Db, StoreError, with_db};

const MAX_TITLE_CHARS: usize = 200;
const MAX_DESCRIPTION_CHARS: usize = 10_000;

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Investigation {
    #[serde(skip)]
    pub seq: i64,
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    pub provider_id: String,
    pub created_by: String,
    #[serde(serialize_with = "timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewInvestigation {
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = r"\S")]
    title: Option<String>,
    #[schema(max_length = 10000)]
    description: Option<String>,
    /// A stored incident to link at once (an investigation opened from an incident).
    #[schema(pattern = "^[0-9a-f]{24}$")]
    incident_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct InvestigationQuery {
    /// KQL, at most 32 KiB.
    #[schema(value_type = String, min_length = 1, max_length = 32768, pattern = r"\S")]
    query: Option<String>,
    /// ISO 8601 duration or interval, default `P1D`.
    #[schema(pattern = "^[A-Za-z0-9:.+/-]{1,100}$")]
    timespan: Option<String>,
    /// Seconds to wait for the SIEM, 1 to 600 (default 180).
    #[schema(minimum = 1, maximum = 600)]
    timeout_s: Option<f64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Page {
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListFilter {
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    cursor: Option<String>,
    /// Only the investigations this incident is linked to.
    #[param(pattern = "^[0-9a-f]{24}$")]
    incident_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct InvestigationPage {
    investigations: Vec<Investigation>,
    next_cursor: Option<String>,
}

pub fn router() -> OpenApiRouter<Queries> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(detail))
        .routes(routes!(query))
        .routes(routes!(links::list_incidents))
        .routes(routes!(links::link_incident, links::unlink_incident))
        .routes(routes!(links::list_queries))
}

use crate::queries::{QueryResultBody, TAG};

/// Open an investigation; it pins the current default provider for all its queries.
#[utoipa::path(post, path = "", tag = TAG, request_body = NewInvestigation,
    responses((status = 201, description = "Opened", body = Investigation,
        headers(("Location" = String, description = "The investigation's URL")))))]
async fn create(
    State(queries): State<Queries>,
    user: AuthUser,
    AppJson(body): AppJson<NewInvestigation>,
) -> Result<impl IntoResponse, ApiError> {
    // Titles and descriptions are shown to every analyst: canonical text, nothing hidden.
    let title = crate::text::required_label("title", body.title.as_deref(), MAX_TITLE_CHARS);
    let description = body
        .description
        .as_deref()
        .map(|d| crate::text::prose(d, MAX_DESCRIPTION_CHARS))
        .transpose()
        .map_err(|e| format!("description {e}"));
    let (title, description) = match (title, description) {
        (Ok(title), Ok(description)) => (title, description),
        (title, description) => {
            let errors = [("title", title.err()), ("description", description.err())]
                .into_iter()
                .filter_map(|(field, message)| {
                    message.map(|message| FieldError {
                        field: field.into(),
                        message,
                    })
                })
                .collect();
            return Err(ApiError::validation(errors));
        }
    };
    let db = &queries.providers.db;
    let incident_id = match body.incident_id.as_deref() {
        Some(id) => Some(links::require_incident(db, id).await?),
        None => None,
    };
    let provider = queries.providers.default_provider().await?.ok_or_else(|| {
        ApiError::conflict(
            "no_default_provider",
            "no default SIEM provider is set; an admin must set one (PUT /api/admin/siem-providers/{id}/default) before investigations can be opened",
        )
    })?;
    let id = ResourceId::generate().to_string();
    let now = Utc::now();
    let sql = "INSERT INTO investigations (id, title, description, provider_id, created_by, created_at) \
               VALUES ($1, $2, $3, $4, $5, $6)";
    with_db!(db, |pool| {
        sqlx::query(sql)
            .bind(&id)
            .bind(&title)
            .bind(description.as_deref())
            .bind(&provider.id)
            .bind(&user.email)
            .bind(now)
            .execute(pool)
            .await
            .map_err(StoreError::from)?;
    });
    if let Some(incident_id) = &incident_id {
        links::insert_link(db, &id, incident_id, &user.email).await?;
    }
    let investigation = find(db, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("investigation vanished"))?;
    tracing::info!(investigation.id = %id, provider.id = %provider.id, "investigation opened");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/investigations/{id}"))],
        Json(investigation),
    ))
}

async fn find(db: &Db, id: &str) -> Result<Option<Investigation>, StoreError> {
    let Some(id) = ResourceId::parse(id) else {
        return Ok(None);
    };
    let sql = "SELECT seq, id, title, description, provider_id, created_by, created_at FROM investigations WHERE id = $1";
    Ok(with_db!(db, |pool| sqlx::query_as(sql)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?))
}

/// One investigation.
#[utoipa::path(get, path = "/{id}", tag = TAG, params(("id" = String, Path, description = "Investigation id")),
    responses((status = 200, description = "The investigation", body = Investigation)))]
async fn detail(
    State(queries): State<Queries>,
    Path(id): Path<String>,
) -> Result<Json<Investigation>, ApiError> {
    find(&queries.providers.db, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no investigation with this id"))
}

/// List investigations, newest first.
#[utoipa::path(get, path = "", tag = TAG, params(ListFilter),
    responses((status = 200, description = "One page of investigations", body = InvestigationPage)))]
async fn list(
    State(queries): State<Queries>,
    AppQuery(filter): AppQuery<ListFilter>,
) -> Result<Json<InvestigationPage>, ApiError> {
    let limit = page::limit(filter.limit, 100)?;
    let before = page::seq_cursor(filter.cursor.as_deref())?;
    let incident_id = filter
        .incident_id
        .as_deref()
        .map(|id| {
            ResourceId::parse(id).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_incident_id",
                    "incident_id must be an incident's id (24 hexadecimal digits)",
                )
            })
        })
        .transpose()?;
    let sql = "SELECT seq, id, title, description, provider_id, created_by, created_at FROM investigations \
               WHERE ($1 IS NULL OR seq < $1) AND ($2 IS NULL OR id IN \
               (SELECT investigation_id FROM investigation_incidents WHERE incident_id = $2)) \
               ORDER BY seq DESC LIMIT $3";
    let db = &queries.providers.db;
    let mut rows: Vec<Investigation> = with_db!(db, |pool| sqlx::query_as(sql)
        .bind(before)
        .bind(incident_id.as_ref().map(ResourceId::as_str))
        .bind(limit + 1)
        .fetch_all(pool)
        .await
        .map_err(StoreError::from)?);
    let next_cursor = page::next_cursor(&mut rows, limit, |i| i.seq.to_string());
    Ok(Json(InvestigationPage {
        investigations: rows,
        next_cursor,
    }))
}

/// Run a query on the investigation's pinned provider, whatever the default is now.
///
/// Large results are streamed as for `POST /api/siem/query`.
#[utoipa::path(post, path = "/{id}/query", tag = TAG, params(("id" = String, Path, description = "Investigation id")),
    request_body = InvestigationQuery,
    responses((status = 200, description = "The result tables", body = QueryResultBody)))]
async fn query(
    State(queries): State<Queries>,
    user: AuthUser,
    Path(id): Path<String>,
    AppJson(body): AppJson<InvestigationQuery>,
) -> Result<QueryResponse, ApiError> {
    let investigation = find(&queries.providers.db, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no investigation with this id"))?;
    let input = QueryInput {
        query: body.query,
        timespan: body.timespan,
        provider_id: None,
        timeout_s: body.timeout_s,
    };
    let choice = ProviderChoice::Pinned {
        provider_id: investigation.provider_id,
        investigation_id: investigation.id,
    };
    Ok(queries.run(&user, input, choice).await?)
}
