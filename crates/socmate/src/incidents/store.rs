//! Incidents, their alerts and sources, and each scope's sync state and lease. Incidents and
//! alerts are unique per `(scope, external id)` (see [`crate::siem::incidents`]); a provider reads
//! one scope (`provider_scopes`), and providers of one scope share its incidents and its lease.
//!
//! Every page is written in one transaction that first renews the caller's lease *fenced by its
//! generation*: a replica that paused past its lease and lost it gets zero rows back and rolls
//! back, so it can never write over the new holder's progress.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::id::ResourceId;
use crate::providers::model::optional_timestamp;
use crate::siem::Incident;
use crate::siem::incidents::nanos;
use crate::store::{Db, StoreError, in_write_tx, with_db};

/// Lease lifetime; renewed with every page.
pub const LEASE_TTL_SECS: i64 = 60;

/// Proof of holding a scope's sync lease.
#[derive(Debug, Clone)]
pub struct Lease {
    pub scope: String,
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

/// Records which scope a provider reads, and merges rows stored under the scope's aliases (the
/// same collection known by another key before) into it: an incident already stored under the
/// scope wins over its alias copy.
pub async fn adopt_scope(
    db: &Db,
    provider_id: &str,
    scope: &str,
    aliases: &[String],
) -> Result<(), SyncStoreError> {
    in_write_tx!(db, |tx| {
        sqlx::query(
            "INSERT INTO provider_scopes (provider_id, scope) VALUES ($1, $2) \
             ON CONFLICT (provider_id) DO UPDATE SET scope = excluded.scope",
        )
        .bind(provider_id)
        .bind(scope)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM sync_scopes WHERE scope = $1")
            .bind(unresolved(provider_id))
            .execute(&mut *tx)
            .await?;
        for alias in aliases.iter().filter(|a| a.as_str() != scope) {
            // `$1` is the alias, `$2` the scope; each statement binds exactly what it names.
            for (sql, binds_scope) in [
                (
                    "DELETE FROM incident_sources WHERE incident_id IN (SELECT a.id FROM incidents a \
                     WHERE a.scope = $1 AND EXISTS (SELECT 1 FROM incidents k WHERE k.scope = $2 \
                     AND k.external_id = a.external_id))",
                    true,
                ),
                (
                    "DELETE FROM incidents WHERE scope = $1 AND EXISTS (SELECT 1 FROM incidents k \
                     WHERE k.scope = $2 AND k.external_id = incidents.external_id)",
                    true,
                ),
                ("UPDATE incidents SET scope = $2 WHERE scope = $1", true),
                (
                    "DELETE FROM incident_alerts WHERE scope = $1 AND EXISTS (SELECT 1 FROM \
                     incident_alerts k WHERE k.scope = $2 AND k.external_id = incident_alerts.external_id)",
                    true,
                ),
                (
                    "UPDATE incident_alerts SET scope = $2 WHERE scope = $1",
                    true,
                ),
                (
                    "UPDATE provider_scopes SET scope = $2 WHERE scope = $1",
                    true,
                ),
                // The alias's progress carries over when the scope has none of its own.
                (
                    "INSERT INTO sync_scopes (scope, watermark, watermark_ns) SELECT $2, watermark, \
                     watermark_ns FROM sync_scopes WHERE scope = $1 ON CONFLICT (scope) DO NOTHING",
                    true,
                ),
                ("DELETE FROM sync_scopes WHERE scope = $1", false),
            ] {
                let query = sqlx::query(sql).bind(alias);
                let query = if binds_scope {
                    query.bind(scope)
                } else {
                    query
                };
                query.execute(&mut *tx).await?;
            }
        }
        Ok::<_, SyncStoreError>(())
    })
}

/// The scope a provider's failures are recorded under before its scope is known.
fn unresolved(provider_id: &str) -> String {
    format!("unresolved:{provider_id}")
}

/// Records a run that failed before its scope was known, where the provider's sync status shows
/// it: its last known scope (unless a run holds it), or a placeholder of its own.
pub async fn record_unresolved(
    db: &Db,
    provider_id: &str,
    code: &str,
    message: &str,
) -> Result<(), SyncStoreError> {
    let now = Utc::now();
    in_write_tx!(db, |tx| {
        let known: Option<(String,)> =
            sqlx::query_as("SELECT scope FROM provider_scopes WHERE provider_id = $1")
                .bind(provider_id)
                .fetch_optional(&mut *tx)
                .await?;
        let scope = match known {
            Some((scope,)) => scope,
            None => {
                let scope = unresolved(provider_id);
                sqlx::query("INSERT INTO provider_scopes (provider_id, scope) VALUES ($1, $2)")
                    .bind(provider_id)
                    .bind(&scope)
                    .execute(&mut *tx)
                    .await?;
                scope
            }
        };
        sqlx::query("INSERT INTO sync_scopes (scope) VALUES ($1) ON CONFLICT (scope) DO NOTHING")
            .bind(&scope)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE sync_scopes SET last_started_at = $2, last_finished_at = $2, \
             last_error_code = $3, last_error_message = $4 \
             WHERE scope = $1 AND lease_expires_ns < $5",
        )
        .bind(&scope)
        .bind(now)
        .bind(code)
        .bind(message)
        .bind(now_ns())
        .execute(&mut *tx)
        .await?;
        Ok::<_, SyncStoreError>(())
    })
}

/// Takes the scope's lease if it is free, expired, or already this instance's (a restarted
/// process keeps its instance id, so it need not wait for its own stale lease to expire).
pub async fn acquire_lease(
    db: &Db,
    scope: &str,
    holder: &str,
) -> Result<Option<Lease>, SyncStoreError> {
    let now = now_ns();
    let expires = now + LEASE_TTL_SECS * 1_000_000_000;
    in_write_tx!(db, |tx| {
        sqlx::query("INSERT INTO sync_scopes (scope) VALUES ($1) ON CONFLICT (scope) DO NOTHING")
            .bind(scope)
            .execute(&mut *tx)
            .await?;
        let row: Option<(i64, Option<String>, Option<i64>)> = sqlx::query_as(
            "UPDATE sync_scopes SET lease_holder = $2, lease_generation = lease_generation + 1, \
             lease_expires_ns = $3, running = TRUE, last_started_at = $4, fetched = 0, created = 0, \
             updated = 0, skipped = 0, notes = NULL \
             WHERE scope = $1 AND (lease_expires_ns < $5 OR lease_holder = $2) \
             RETURNING lease_generation, watermark, watermark_ns",
        )
        .bind(scope)
        .bind(holder)
        .bind(expires)
        .bind(Utc::now())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        Ok::<_, SyncStoreError>(row.map(|(generation, watermark, watermark_ns)| Lease {
            scope: scope.to_owned(),
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

/// Writes one batch idempotently: an incident or alert is only ever replaced by a version with
/// the same or a newer `lastUpdateDateTime`.
pub async fn commit_page(
    db: &Db,
    lease: &Lease,
    incidents: &[Incident],
) -> Result<PageCounts, SyncStoreError> {
    let expires = now_ns() + LEASE_TTL_SECS * 1_000_000_000;
    let now = Utc::now();
    let scope = lease.scope.as_str();
    in_write_tx!(db, |tx| {
        let fenced = sqlx::query(
            "UPDATE sync_scopes SET lease_expires_ns = $4 WHERE scope = $1 AND lease_holder = $2 AND lease_generation = $3",
        )
        .bind(scope)
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
                        "INSERT INTO incidents (id, scope, external_id, status, severity, last_update_ns, created_ns, data, first_synced_at, tenant_id) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
                    .bind(&incident.tenant_id)
                    .execute(&mut *tx)
                    .await?;
                    counts.created += 1;
                    Some(id)
                }
                Some((id, stored_ns)) if update_ns > stored_ns => {
                    sqlx::query(
                        "UPDATE incidents SET status = $2, severity = $3, last_update_ns = $4, created_ns = $5, data = $6, tenant_id = $7 \
                         WHERE id = $1 AND last_update_ns <= $4",
                    )
                    .bind(&id)
                    .bind(&incident.status)
                    .bind(&incident.severity)
                    .bind(update_ns)
                    .bind(incident.created.map(nanos))
                    .bind(incident.data.to_string())
                    .bind(&incident.tenant_id)
                    .execute(&mut *tx)
                    .await?;
                    counts.updated += 1;
                    Some(id)
                }
                Some(_) => None,
            };
            if let Some(id) = &id {
                sqlx::query("DELETE FROM incident_sources WHERE incident_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                for source in &incident.sources {
                    sqlx::query("INSERT INTO incident_sources (incident_id, source) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                        .bind(id)
                        .bind(source)
                        .execute(&mut *tx)
                        .await?;
                }
            }
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
            "UPDATE sync_scopes SET fetched = fetched + $2, created = created + $3, updated = updated + $4 WHERE scope = $1",
        )
        .bind(scope)
        .bind(counts.fetched)
        .bind(counts.created)
        .bind(counts.updated)
        .execute(&mut *tx)
        .await?;
        Ok(counts)
    })
}

/// How a run ended, for [`finish`].
pub struct RunEnd<'a> {
    /// The newest update read, when the whole window was read (the watermark only moves then).
    pub watermark: Option<(&'a str, i64)>,
    pub error: Option<(&'a str, &'a str)>,
    pub skipped: i64,
    pub notes: &'a [String],
}

/// Ends a run and releases the lease. The watermark only moves forward, and only after a run
/// that read its whole window.
pub async fn finish(db: &Db, lease: &Lease, end: &RunEnd<'_>) -> Result<(), SyncStoreError> {
    let now = Utc::now();
    let (watermark, watermark_ns) = end.watermark.unzip();
    let (code, message) = end.error.unzip();
    let notes = (!end.notes.is_empty()).then(|| serde_json::json!(end.notes).to_string());
    let done = with_db!(db, |pool| {
        sqlx::query(
            "UPDATE sync_scopes SET running = FALSE, lease_expires_ns = 0, last_finished_at = $4, \
             last_success_at = CASE WHEN $5 IS NULL THEN $4 ELSE last_success_at END, \
             watermark = CASE WHEN $7 IS NOT NULL AND $7 > COALESCE(watermark_ns, -1) THEN $6 ELSE watermark END, \
             watermark_ns = CASE WHEN $7 IS NOT NULL AND $7 > COALESCE(watermark_ns, -1) THEN $7 ELSE watermark_ns END, \
             last_error_code = $5, last_error_message = $8, skipped = $9, notes = $10 \
             WHERE scope = $1 AND lease_holder = $2 AND lease_generation = $3",
        )
        .bind(&lease.scope)
        .bind(&lease.holder)
        .bind(lease.generation)
        .bind(now)
        .bind(code)
        .bind(watermark)
        .bind(watermark_ns)
        .bind(message)
        .bind(end.skipped)
        .bind(notes)
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
    /// The collection this provider's incidents are read from (shared by the providers that
    /// read the same one), once a run has resolved it.
    pub scope: Option<String>,
    pub fetched: i64,
    pub created: i64,
    pub updated: i64,
    /// Records the last run could not read as incidents.
    pub skipped: i64,
    /// How the last run read, where it matters (fallbacks taken, slices split).
    pub notes: Vec<String>,
    pub last_error: Option<SyncErrorBody>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncErrorBody {
    pub code: String,
    pub message: String,
}

type StatusRow = (
    String,
    bool,
    i64,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<String>,
    i64,
    i64,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The sync status of the scope a provider reads.
pub async fn status(db: &Db, provider_id: &str) -> Result<SyncStatus, StoreError> {
    let sql = "SELECT s.scope, s.running, s.lease_expires_ns, s.last_started_at, s.last_finished_at, \
               s.last_success_at, s.watermark, s.fetched, s.created, s.updated, s.skipped, \
               s.last_error_code, s.last_error_message, s.notes \
               FROM provider_scopes p JOIN sync_scopes s ON s.scope = p.scope WHERE p.provider_id = $1";
    let row: Option<StatusRow> = with_db!(db, |pool| sqlx::query_as(sql)
        .bind(provider_id)
        .fetch_optional(pool)
        .await?);
    let Some((
        scope,
        running,
        expires,
        started,
        finished,
        success,
        watermark,
        fetched,
        created,
        updated,
        skipped,
        code,
        message,
        notes,
    )) = row
    else {
        return Ok(SyncStatus {
            state: "idle",
            last_started_at: None,
            last_finished_at: None,
            last_success_at: None,
            watermark: None,
            scope: None,
            fetched: 0,
            created: 0,
            updated: 0,
            skipped: 0,
            notes: Vec::new(),
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
        scope: Some(scope),
        fetched,
        created,
        updated,
        skipped,
        notes: notes
            .and_then(|n| serde_json::from_str(&n).ok())
            .unwrap_or_default(),
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
    /// Incidents of the scope this provider reads.
    pub provider_id: Option<String>,
    pub tenant_id: Option<String>,
    /// Incidents with an alert from this product.
    pub source: Option<String>,
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
         AND ($4 IS NULL OR EXISTS (SELECT 1 FROM provider_scopes p \
              WHERE p.provider_id = $4 AND p.scope = incidents.scope)) \
         AND ($5 IS NULL OR tenant_id = $5) \
         AND ($6 IS NULL OR EXISTS (SELECT 1 FROM incident_sources s \
              WHERE s.source = $6 AND s.incident_id = incidents.id)) \
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
        " AND ($7 IS NULL OR last_update_ns < $7 OR (last_update_ns = $7 AND id < $8)) \
         ORDER BY last_update_ns DESC, id DESC LIMIT $9"
    );
    let count_sql = concat!("SELECT COUNT(*) FROM incidents WHERE ", incident_filters!());
    let rows: Vec<IncidentRow> = with_db!(db, |pool| {
        sqlx::query_as(page_sql)
            .bind(&f.status)
            .bind(&f.severity)
            .bind(f.updated_since_ns)
            .bind(&f.provider_id)
            .bind(&f.tenant_id)
            .bind(&f.source)
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
            .bind(&f.tenant_id)
            .bind(&f.source)
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

/// The live providers that read the incident's scope.
pub async fn incident_providers(db: &Db, scope: &str) -> Result<Vec<String>, StoreError> {
    let sql = "SELECT p.provider_id FROM provider_scopes p JOIN siem_providers s ON s.id = p.provider_id \
               WHERE p.scope = $1 AND s.deleted_at IS NULL ORDER BY p.provider_id";
    let rows: Vec<(String,)> = with_db!(db, |pool| sqlx::query_as(sql)
        .bind(scope)
        .fetch_all(pool)
        .await?);
    Ok(rows.into_iter().map(|(p,)| p).collect())
}

/// How current the stored incidents are: the oldest last success over the collections synced
/// (absent until each has succeeded once), and whether any collection's last run failed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Freshness {
    #[serde(serialize_with = "optional_timestamp")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub as_of: Option<DateTime<Utc>>,
    pub last_run_failed: bool,
}

pub async fn freshness(db: &Db) -> Result<Freshness, StoreError> {
    let sql = "SELECT last_success_at, last_error_code IS NOT NULL FROM sync_scopes";
    let rows: Vec<(Option<DateTime<Utc>>, bool)> =
        with_db!(db, |pool| { sqlx::query_as(sql).fetch_all(pool).await? });
    let mut as_of: Option<DateTime<Utc>> = None;
    let mut all_succeeded = !rows.is_empty();
    for (at, _) in &rows {
        match at {
            Some(t) => as_of = Some(as_of.map_or(*t, |a| a.min(*t))),
            None => all_succeeded = false,
        }
    }
    Ok(Freshness {
        as_of: as_of.filter(|_| all_succeeded),
        last_run_failed: rows.iter().any(|(_, failed)| *failed),
    })
}
