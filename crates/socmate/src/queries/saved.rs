//! Saved queries (`/api/siem/saved-queries`): KQL an analyst keeps to run again. Each belongs to
//! the user who saved it; `shared` shows it to every signed-in user. Only the owner edits one;
//! the owner or an admin deletes one (an admin can take down a shared query that should not be
//! there, but not put words in someone's name). A query someone else keeps private does not
//! exist for the caller (404, never 403, so ids reveal nothing).
//!
//! Writes are bounded: at most [`MAX_PER_OWNER`] saved queries per user, names of at most
//! [`MAX_NAME_CHARS`] characters, the query under the same 32 KiB rule as a run.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::routes::{Page, TAG};
use super::service::{QueryInput, QueryServiceError, validate};
use crate::auth::{AuthUser, Role};
use crate::http::{ApiError, AppJson, AppQuery, FieldError, page};
use crate::id::ResourceId;
use crate::providers::model::timestamp;
use crate::store::{Db, StoreError, with_db};

pub const MAX_PER_OWNER: i64 = 200;
pub const MAX_NAME_CHARS: usize = 100;
const MAX_PAGE: i64 = 100;

pub fn router() -> OpenApiRouter<super::Queries> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(update, remove))
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct SavedQuery {
    #[serde(skip)]
    seq: i64,
    id: String,
    name: String,
    query: String,
    timespan: String,
    /// Visible to every signed-in user (only the owner edits it).
    shared: bool,
    owner: String,
    /// The caller owns it, and so may edit it.
    mine: bool,
    #[serde(serialize_with = "timestamp")]
    #[schema(value_type = String, format = DateTime)]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: DateTime<Utc>,
}

/// A saved query as written: on create and on update (which replaces every field).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SavedQueryInput {
    /// 1 to 100 characters, unique among the caller's saved queries.
    #[schema(value_type = String, min_length = 1, max_length = 100, pattern = r"\S")]
    name: Option<String>,
    /// KQL, at most 32 KiB.
    #[schema(value_type = String, min_length = 1, max_length = 32768, pattern = r"\S")]
    query: Option<String>,
    /// ISO 8601 duration or interval, default `P1D`.
    #[schema(pattern = "^[A-Za-z0-9:.+/-]{1,100}$")]
    timespan: Option<String>,
    /// Show it to every signed-in user (default false).
    shared: Option<bool>,
}

#[derive(Serialize, ToSchema)]
struct SavedQueryPage {
    saved_queries: Vec<SavedQuery>,
    next_cursor: Option<String>,
}

struct Valid {
    name: String,
    query: String,
    timespan: String,
    shared: bool,
}

/// Every field checked at once, so the form shows all its errors together.
fn validated(input: SavedQueryInput) -> Result<Valid, ApiError> {
    let name = crate::text::required_label("name", input.name.as_deref(), MAX_NAME_CHARS);
    let run = validate(&QueryInput {
        query: input.query,
        timespan: input.timespan,
        ..QueryInput::default()
    });
    match (name, run) {
        (Ok(name), Ok(run)) => Ok(Valid {
            name,
            query: run.query,
            timespan: run.timespan,
            shared: input.shared.unwrap_or(false),
        }),
        (name, run) => {
            let mut errors: Vec<FieldError> = name
                .err()
                .map(|message| FieldError {
                    field: "name".into(),
                    message,
                })
                .into_iter()
                .collect();
            if let Err(QueryServiceError::Invalid(more)) = run {
                errors.extend(more);
            }
            Err(ApiError::validation(errors))
        }
    }
}

fn name_taken() -> ApiError {
    ApiError::conflict(
        "saved_query_name_taken",
        "you already have a saved query with this name; pick another name or edit that one",
    )
}

/// A `SELECT` of saved queries as the caller (`$1`) sees them, ending in `$filter`: one literal,
/// so that the SQL stays static.
macro_rules! select_saved {
    ($filter:literal) => {
        concat!(
            "SELECT seq, id, name, query, timespan, shared, owner, owner = $1 AS mine, ",
            "created_at, updated_at FROM saved_queries WHERE (owner = $1 OR shared) AND ",
            $filter
        )
    };
}

/// One saved query as `caller` sees it: theirs, or shared.
async fn find_visible(db: &Db, caller: &str, id: &str) -> Result<Option<SavedQuery>, StoreError> {
    let Some(id) = ResourceId::parse(id) else {
        return Ok(None);
    };
    let sql = select_saved!("id = $2");
    Ok(with_db!(db, |pool| sqlx::query_as(sql)
        .bind(caller)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?))
}

fn not_found() -> ApiError {
    ApiError::not_found("no saved query with this id among yours and the shared ones")
}

/// The caller's saved queries and those others share, newest first.
#[utoipa::path(get, path = "/saved-queries", tag = TAG, params(Page),
    responses((status = 200, description = "One page of saved queries (limit up to 100)", body = SavedQueryPage)))]
async fn list(
    State(queries): State<super::Queries>,
    user: AuthUser,
    AppQuery(page): AppQuery<Page>,
) -> Result<Json<SavedQueryPage>, ApiError> {
    let limit = page::limit(page.limit, MAX_PAGE)?;
    let before = page::seq_cursor(page.cursor.as_deref())?;
    let sql = select_saved!("($2 IS NULL OR seq < $2) ORDER BY seq DESC LIMIT $3");
    let db = &queries.providers.db;
    let mut rows: Vec<SavedQuery> = with_db!(db, |pool| sqlx::query_as(sql)
        .bind(&user.email)
        .bind(before)
        .bind(limit + 1)
        .fetch_all(pool)
        .await
        .map_err(StoreError::from)?);
    let next_cursor = page::next_cursor(&mut rows, limit, |q| q.seq.to_string());
    Ok(Json(SavedQueryPage {
        saved_queries: rows,
        next_cursor,
    }))
}

/// Save a query under a name of the caller's.
#[utoipa::path(post, path = "/saved-queries", tag = TAG, request_body = SavedQueryInput,
    responses((status = 201, description = "Saved", body = SavedQuery,
        headers(("Location" = String, description = "The saved query's URL")))))]
async fn create(
    State(queries): State<super::Queries>,
    user: AuthUser,
    AppJson(body): AppJson<SavedQueryInput>,
) -> Result<impl IntoResponse, ApiError> {
    let valid = validated(body)?;
    let id = ResourceId::generate().to_string();
    let now = Utc::now();
    // The cap is part of the insert: exact on SQLite (writes serialise); on PostgreSQL a burst of
    // concurrent saves by one user can pass it by at most that burst, which keeps it bounded.
    let sql = "INSERT INTO saved_queries (id, owner, name, query, timespan, shared, created_at, updated_at) \
               SELECT $1, $2, $3, $4, $5, $6, $7, $7 \
               WHERE (SELECT COUNT(*) FROM saved_queries WHERE owner = $2) < $8";
    let db = &queries.providers.db;
    let inserted = with_db!(db, |pool| sqlx::query(sql)
        .bind(&id)
        .bind(&user.email)
        .bind(&valid.name)
        .bind(&valid.query)
        .bind(&valid.timespan)
        .bind(valid.shared)
        .bind(now)
        .bind(MAX_PER_OWNER)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()));
    match inserted.map_err(StoreError::from) {
        Ok(0) => {
            return Err(ApiError::conflict(
                "saved_query_limit",
                format!(
                    "you have {MAX_PER_OWNER} saved queries, the most one user keeps; delete some first"
                ),
            ));
        }
        Ok(_) => {}
        Err(StoreError::UniqueViolation) => return Err(name_taken()),
        Err(e) => return Err(e.into()),
    }
    let saved = find_visible(db, &user.email, &id)
        .await?
        .ok_or_else(not_found)?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/siem/saved-queries/{id}"))],
        Json(saved),
    ))
}

/// Replace a saved query of the caller's: name, query, timespan and sharing.
#[utoipa::path(put, path = "/saved-queries/{id}", tag = TAG, request_body = SavedQueryInput,
    params(("id" = String, Path, description = "Saved query id")),
    responses((status = 200, description = "Updated", body = SavedQuery)))]
async fn update(
    State(queries): State<super::Queries>,
    user: AuthUser,
    Path(id): Path<String>,
    AppJson(body): AppJson<SavedQueryInput>,
) -> Result<Json<SavedQuery>, ApiError> {
    let db = &queries.providers.db;
    let existing = find_visible(db, &user.email, &id)
        .await?
        .ok_or_else(not_found)?;
    if !existing.mine {
        return Err(ApiError::forbidden(format!(
            "this saved query is {}'s, shared with you to run, not to edit; save a copy under your own name",
            existing.owner
        )));
    }
    let valid = validated(body)?;
    let sql = "UPDATE saved_queries SET name = $1, query = $2, timespan = $3, shared = $4, updated_at = $5 \
               WHERE id = $6 AND owner = $7";
    let updated = with_db!(db, |pool| sqlx::query(sql)
        .bind(&valid.name)
        .bind(&valid.query)
        .bind(&valid.timespan)
        .bind(valid.shared)
        .bind(Utc::now())
        .bind(&existing.id)
        .bind(&user.email)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()));
    match updated.map_err(StoreError::from) {
        Ok(0) => return Err(not_found()),
        Ok(_) => {}
        Err(StoreError::UniqueViolation) => return Err(name_taken()),
        Err(e) => return Err(e.into()),
    }
    find_visible(db, &user.email, &existing.id)
        .await?
        .map(Json)
        .ok_or_else(not_found)
}

/// Delete a saved query: the caller's own, or (admins) a shared one.
#[utoipa::path(delete, path = "/saved-queries/{id}", tag = TAG,
    params(("id" = String, Path, description = "Saved query id")),
    responses((status = 204, description = "Deleted")))]
async fn remove(
    State(queries): State<super::Queries>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let db = &queries.providers.db;
    let existing = find_visible(db, &user.email, &id)
        .await?
        .ok_or_else(not_found)?;
    if !existing.mine && user.role != Role::Admin {
        return Err(ApiError::forbidden(format!(
            "this saved query is {}'s; only its owner or an admin deletes it",
            existing.owner
        )));
    }
    with_db!(db, |pool| {
        sqlx::query("DELETE FROM saved_queries WHERE id = $1")
            .bind(&existing.id)
            .execute(pool)
            .await
            .map_err(StoreError::from)?;
    });
    if !existing.mine {
        tracing::info!(saved_query.id = %existing.id, owner = %existing.owner, admin = %user.email, "shared saved query deleted by an admin");
    }
    Ok(StatusCode::NO_CONTENT)
}
