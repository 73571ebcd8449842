//! Incidents, their alerts, which providers saw them, and each provider's sync state and lease.
//! Incidents and alerts are unique per `(scope, external id)`: see [`crate::siem::incidents`].
//!
//! Every page is written in one transaction that first renews the caller's lease *fenced by its
//! generation*: a replica that paused past its lease and lost it gets zero rows back and rolls
//! back, so it can never write over the new holder's progress.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::id::ResourceId;
use crate::providers::model::timestamp;
use crate::siem::Incident;
use crate::siem::incidents::nanos;
use crate::store::{Db, StoreError, in_write_tx, with_db};

/// Lease lifetime; renewed with every page.
pub const LEASE_TTL_SECS: i64 = 60;

/// Proof of holding a provider's sync lease.
#[derive(Debug, Clone)]
pub struct Lease {
    pub provider_id: String,
    pub holder: String,
    pub generation: i64,
    pub watermark: Option<String>,
    pub watermark_ns: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncStoreError {
    #[error("the sync lease was lost to another replica")]
    LeaseLost,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for SyncStoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

fn now_ns() -> i64 {
    nanos(Utc::now())
}

/// Takes the provider's lease if it is free, expired, or already this instance's (a restarted
/// process keeps its instance id, so it need not wait for its own stale lease to expire).
pub async fn acquire_lease(
    db: &Db,
    provider_id: &str,
    holder: &str,
) -> Result<Option<Lease>, SyncStoreError> {
    let now = now_ns();
    let expires = now + LEASE_TTL_SECS * 1_000_000_000;
    in_write_tx!(db, |tx| {
        sqlx::query(
            "INSERT INTO sync_state (provider_id) VALUES ($1) ON CONFLICT (provider_id) DO NOTHING",
        )
        .bind(provider_id)
        .execute(&mut *tx)
        .await?;
        let row: Option<(i64, Option<String>, Option<i64>)> = sqlx::query_as(
            "UPDATE sync_state SET lease_holder = $2, lease_generation = lease_generation + 1, \
             lease_expires_ns = $3, running = TRUE, last_started_at = $4, fetched = 0, created = 0, updated = 0 \
             WHERE provider_id = $1 AND (lease_expires_ns < $5 OR lease_holder = $2) \
             RETURNING lease_generation, watermark, watermark_ns",
        )
        .bind(provider_id)
        .bind(holder)
        .bind(expires)
        .bind(Utc::now())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        Ok::<_, SyncStoreError>(row.map(|(generation, watermark, watermark_ns)| Lease {
            provider_id: provider_id.to_owned(),
            holder: holder.to_owned(),
            generation,
            watermark,
            watermark_ns,
        }))
    })
}

/// Counts of one committed page.
#[derive(Debug, Default, Clone, Copy)]
pub struct PageCounts {
    pub fetched: i64,
    pub created: i64,
    pub updated: i64,
}

/// Writes one page idempotently: an incident or alert is only ever replaced by a version with
/// the same or a newer `lastUpdateDateTime`.
pub async fn commit_page(
    db: &Db,
    lease: &Lease,
    scope: &str,
    incidents: &[Incident],
) -> Result<PageCounts, SyncStoreError> {
    let expires = now_ns() + LEASE_TTL_SECS * 1_000_000_000;
    let now = Utc::now();
    in_write_tx!(db, |tx| {
        let fenced = sqlx::query(
            "UPDATE sync_state SET lease_expires_ns = $4 WHERE provider_id = $1 AND lease_holder = $2 AND lease_generation = $3",
        )
        .bind(&lease.provider_id)
        .bind(&lease.holder)
        .bind(lease.generation)
        .bind(expires)
        .execute(&mut *tx)
        .await?;
        if fenced.rows_affected() == 0 {
            return Err(SyncStoreError::LeaseLost);
        }
        let mut counts = PageCounts::default();
        for incident in incidents {
            counts.fetched += 1;
            let existing: Option<(String, i64)> = sqlx::query_as(
                "SELECT id, last_update_ns FROM incidents WHERE scope = $1 AND external_id = $2",
            )
            .bind(scope)
            .bind(&incident.external_id)
            .fetch_optional(&mut *tx)
            .await?;
            let update_ns = nanos(incident.last_update);
            let id = match existing {
                None => {
                    let id = ResourceId::generate().to_string();
                    sqlx::query(
                        "INSERT INTO incidents (id, scope, external_id, status, severity, last_update_ns, created_ns, data, first_synced_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(&id)
                    .bind(scope)
                    .bind(&incident.external_id)
                    .bind(&incident.status)
                    .bind(&incident.severity)
                    .bind(update_ns)
                    .bind(incident.created.map(nanos))
                    .bind(incident.data.to_string())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    counts.created += 1;
                    id
                }
                Some((id, stored_ns)) => {
                    if update_ns > stored_ns {
                        sqlx::query(
                            "UPDATE incidents SET status = $2, severity = $3, last_update_ns = $4, created_ns = $5, data = $6 \
                             WHERE id = $1 AND last_update_ns <= $4",
                        )
                        .bind(&id)
                        .bind(&incident.status)
                        .bind(&incident.severity)
                        .bind(update_ns)
                        .bind(incident.created.map(nanos))
                        .bind(incident.data.to_string())
                        .execute(&mut *tx)
                        .await?;
                        counts.updated += 1;
                    }
                    id
                }
            };
            sqlx::query("INSERT INTO incident_providers (incident_id, provider_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(&id)
                .bind(&lease.provider_id)
                .execute(&mut *tx)
                .await?;
            for alert in &incident.alerts {
                sqlx::query(
                    "INSERT INTO incident_alerts (scope, external_id, incident_external_id, last_update_ns, data) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, external_id) DO UPDATE SET \
                     incident_external_id = excluded.incident_external_id, last_update_ns = excluded.last_update_ns, data = excluded.data \
                     WHERE excluded.last_update_ns >= incident_alerts.last_update_ns",
                )
                .bind(scope)
                .bind(&alert.external_id)
                .bind(&incident.external_id)
                .bind(nanos(alert.last_update))
                .bind(alert.data.to_string())
                .execute(&mut *tx)
                .await?;
            }
        }
        sqlx::query(
            "UPDATE sync_state SET fetched = fetched + $2, created = created + $3, updated = updated + $4 WHERE provider_id = $1",
        )
        .bind(&lease.provider_id)
        .bind(counts.fetched)
        .bind(counts.created)
        .bind(counts.updated)
        .execute(&mut *tx)
        .await?;
        Ok(counts)
    })
}

/// Ends a run and releases the lease. The watermark only moves forward, and only after a run
/// that read its whole window.
pub async fn finish(
    db: &Db,
    lease: &Lease,
    new_watermark: Option<(&str, i64)>,
    error: Option<(&str, &str)>,
) -> Result<(), SyncStoreError> {
    let now = Utc::now();
    let (watermark, watermark_ns) = new_watermark.unzip();
    let (code, message) = error.unzip();
    let done = with_db!(db, |pool| {
        sqlx::query(
            "UPDATE sync_state SET running = FALSE, lease_expires_ns = 0, last_finished_at = $4, \
             last_success_at = CASE WHEN $5 IS NULL THEN $4 ELSE last_success_at END, \
             watermark = CASE WHEN $7 IS NOT NULL AND $7 > COALESCE(watermark_ns, -1) THEN $6 ELSE watermark END, \
             watermark_ns = CASE WHEN $7 IS NOT NULL AND $7 > COALESCE(watermark_ns, -1) THEN $7 ELSE watermark_ns END, \
             last_error_code = $5, last_error_message = $8 \
             WHERE provider_id = $1 AND lease_holder = $2 AND lease_generation = $3",
        )
        .bind(&lease.provider_id)
        .bind(&lease.holder)
        .bind(lease.generation)
        .bind(now)
        .bind(code)
        .bind(watermark)
        .bind(watermark_ns)
        .bind(message)
        .execute(pool)
        .await?
        .rows_affected()
    });
    if done == 0 {
        return Err(SyncStoreError::LeaseLost);
    }
    Ok(())
}

/// A provider's sync status as `GET …/sync` shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncStatus {
    /// `running` or `idle`.
    #[schema(value_type = String)]
    pub state: &'static str,
    #[serde(serialize_with = "optional_timestamp")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "optional_timestamp")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_finished_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "optional_timestamp")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_success_at: Option<DateTime<Utc>>,
    pub watermark: Option<String>,
    pub fetched: i64,
    pub created: i64,
    pub updated: i64,
    pub last_error: Option<SyncErrorBody>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncErrorBody {
    pub code: String,
    pub message: String,
}

fn optional_timestamp<S: serde::Serializer>(
    t: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => timestamp(t, s),
        None => s.serialize_none(),
    }
}

type StatusRow = (
    bool,
    i64,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<String>,
    i64,
    i64,
    i64,
    Option<String>,
    Option<String>,
);

pub async fn status(db: &Db, provider_id: &str) -> Result<SyncStatus, StoreError> {
    let sql = "SELECT running, lease_expires_ns, last_started_at, last_finished_at, last_success_at, watermark, \
               fetched, created, updated, last_error_code, last_error_message FROM sync_state WHERE provider_id = $1";
    let row: Option<StatusRow> = with_db!(db, |pool| sqlx::query_as(sql)
        .bind(provider_id)
        .fetch_optional(pool)
        .await?);
    let Some((
        running,
        expires,
        started,
        finished,
        success,
        watermark,
        fetched,
        created,
        updated,
        code,
        message,
    )) = row
    else {
        return Ok(SyncStatus {
            state: "idle",
            last_started_at: None,
            last_finished_at: None,
            last_success_at: None,
            watermark: None,
            fetched: 0,
            created: 0,
            updated: 0,
            last_error: None,
        });
    };
    // A run whose holder died shows as idle once its lease has expired.
    let state = if running && expires > now_ns() {
        "running"
    } else {
        "idle"
    };
    Ok(SyncStatus {
        state,
        last_started_at: started,
        last_finished_at: finished,
        last_success_at: success,
        watermark,
        fetched,
        created,
        updated,
        last_error: code.map(|code| SyncErrorBody {
            code,
            message: message.unwrap_or_default(),
        }),
    })
}

/// Filters of `GET /api/incidents`.
#[derive(Debug, Default)]
pub struct IncidentFilter {
    pub status: Option<String>,
    pub severity: Option<String>,
    pub provider_id: Option<String>,
    pub updated_since_ns: Option<i64>,
    /// Keyset cursor: `(last_update_ns, id)` of the last incident of the previous page.
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

#[derive(sqlx::FromRow)]
pub struct IncidentRow {
    pub id: String,
    pub scope: String,
    pub external_id: String,
    pub last_update_ns: i64,
    pub data: String,
}

/// The `WHERE` clause shared by the page and its count (a macro, so queries stay static).
/// Redirected (merged) incidents are hidden unless asked for: a merge shows once, as its target.
macro_rules! incident_filters {
    () => {
        "($1 IS NULL OR status = $1) AND ($2 IS NULL OR severity = $2) \
         AND ($3 IS NULL OR last_update_ns >= $3) \
         AND ($4 IS NULL OR EXISTS (SELECT 1 FROM incident_providers p \
              WHERE p.incident_id = incidents.id AND p.provider_id = $4)) \
         AND (status IS NULL OR status <> 'redirected' OR $1 = 'redirected')"
    };
}

pub async fn list_incidents(
    db: &Db,
    f: &IncidentFilter,
) -> Result<(Vec<IncidentRow>, i64), StoreError> {
    let (before_ns, before_id) = f.before.clone().unzip();
    let page_sql = concat!(
        "SELECT id, scope, external_id, last_update_ns, data FROM incidents WHERE ",
        incident_filters!(),
        " AND ($5 IS NULL OR last_update_ns < $5 OR (last_update_ns = $5 AND id < $6)) \
         ORDER BY last_update_ns DESC, id DESC LIMIT $7"
    );
    let count_sql = concat!("SELECT COUNT(*) FROM incidents WHERE ", incident_filters!());
    let rows: Vec<IncidentRow> = with_db!(db, |pool| {
        sqlx::query_as(page_sql)
            .bind(&f.status)
            .bind(&f.severity)
            .bind(f.updated_since_ns)
            .bind(&f.provider_id)
            .bind(before_ns)
            .bind(before_id)
            .bind(f.limit)
            .fetch_all(pool)
            .await?
    });
    let (total,): (i64,) = with_db!(db, |pool| {
        sqlx::query_as(count_sql)
            .bind(&f.status)
            .bind(&f.severity)
            .bind(f.updated_since_ns)
            .bind(&f.provider_id)
            .fetch_one(pool)
            .await?
    });
    Ok((rows, total))
}

pub async fn get_incident(db: &Db, id: &str) -> Result<Option<IncidentRow>, StoreError> {
    let sql = "SELECT id, scope, external_id, last_update_ns, data FROM incidents WHERE id = $1";
    Ok(with_db!(db, |pool| sqlx::query_as(sql)
        .bind(id)
        .fetch_optional(pool)
        .await?))
}

pub async fn incident_alerts(
    db: &Db,
    scope: &str,
    external_id: &str,
) -> Result<Vec<String>, StoreError> {
    let sql = "SELECT data FROM incident_alerts WHERE scope = $1 AND incident_external_id = $2 ORDER BY external_id";
    let rows: Vec<(String,)> = with_db!(db, |pool| sqlx::query_as(sql)
        .bind(scope)
        .bind(external_id)
        .fetch_all(pool)
        .await?);
    Ok(rows.into_iter().map(|(d,)| d).collect())
}

pub async fn incident_providers(db: &Db, incident_id: &str) -> Result<Vec<String>, StoreError> {
    let sql =
        "SELECT provider_id FROM incident_providers WHERE incident_id = $1 ORDER BY provider_id";
    let rows: Vec<(String,)> = with_db!(db, |pool| sqlx::query_as(sql)
        .bind(incident_id)
        .fetch_all(pool)
        .await?);
    Ok(rows.into_iter().map(|(p,)| p).collect())
}
