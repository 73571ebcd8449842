//! The query audit trail: one row per query that reached a provider.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::auth::Role;
use crate::providers::model::timestamp;
use crate::store::{Db, StoreError, with_db};

pub struct NewAuditEntry<'a> {
    pub id: &'a str,
    pub actor: &'a str,
    pub actor_role: Role,
    pub provider_id: &'a str,
    pub investigation_id: Option<&'a str>,
    pub query: &'a str,
    pub timespan: &'a str,
    pub status: &'a str,
    pub error_code: Option<&'a str>,
    pub row_count: usize,
    pub duration_ms: f64,
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditEntry {
    #[serde(skip)]
    pub seq: i64,
    pub id: String,
    pub actor: String,
    pub actor_role: String,
    pub provider_id: String,
    pub investigation_id: Option<String>,
    pub query: String,
    pub timespan: String,
    pub status: String,
    pub error_code: Option<String>,
    pub row_count: i64,
    pub duration_ms: f64,
    #[serde(serialize_with = "timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

pub async fn record(db: &Db, entry: &NewAuditEntry<'_>) -> Result<(), StoreError> {
    let sql = "INSERT INTO query_audit (id, actor, actor_role, provider_id, investigation_id, query, \
               timespan, status, error_code, row_count, duration_ms, created_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
    let role = match entry.actor_role {
        Role::Admin => "admin",
        Role::Analyst => "analyst",
    };
    let rows = i64::try_from(entry.row_count).unwrap_or(i64::MAX);
    with_db!(db, |pool| {
        sqlx::query(sql)
            .bind(entry.id)
            .bind(entry.actor)
            .bind(role)
            .bind(entry.provider_id)
            .bind(entry.investigation_id)
            .bind(entry.query)
            .bind(entry.timespan)
            .bind(entry.status)
            .bind(entry.error_code)
            .bind(rows)
            .bind(entry.duration_ms)
            .bind(Utc::now())
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Which query records a list holds.
#[derive(Debug, Clone, Copy)]
pub enum AuditScope<'a> {
    Everyone,
    /// One caller's queries.
    Actor(&'a str),
    /// The queries run in one investigation, by anyone.
    Investigation(&'a str),
}

/// Newest first; `before` is the cursor.
pub async fn list(
    db: &Db,
    scope: AuditScope<'_>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEntry>, StoreError> {
    let (actor, investigation) = match scope {
        AuditScope::Everyone => (None, None),
        AuditScope::Actor(actor) => (Some(actor), None),
        AuditScope::Investigation(id) => (None, Some(id)),
    };
    let sql = "SELECT seq, id, actor, actor_role, provider_id, investigation_id, query, timespan, status, \
               error_code, row_count, duration_ms, created_at FROM query_audit \
               WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR investigation_id = $2) \
               AND ($3 IS NULL OR seq < $3) ORDER BY seq DESC LIMIT $4";
    Ok(with_db!(db, |pool| {
        sqlx::query_as(sql)
            .bind(actor)
            .bind(investigation)
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await?
    }))
}
