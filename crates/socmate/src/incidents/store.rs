//! Incidents, their alerts and sources, and each scope's sync state and lease. Incidents and
//! alerts are unique per `(scope, external id)` (see [`crate::siem::incidents`]); a provider reads
//! one scope (`provider_scopes`), and providers of one scope share its incidents and its lease.
//!
//! Every page is written in one transaction that first renews the caller's lease *fenced by its
//! generation*: a replica that paused past its lease and lost it gets zero rows back and rolls
//! back, so it can never write over the new holder's progress.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::id::ResourceId;
use crate::providers::model::optional_timestamp;
use crate::siem::incidents::nanos;
use crate::siem::{Alert, Incident};
use crate::store::{Arg, Db, DynSql, StoreError, dyn_query, in_write_tx, with_db};

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

/// Rows per multi-row statement: a page (Graph's 50 incidents) in one, far below both backends'
/// bind limits, and small enough that SQLite's placeholder lookup (linear in the placeholders
/// per bind) stays cheap.
const ROWS_PER_STATEMENT: usize = 100;

/// informational 1, low 2, medium 3, high 4, anything else 0 (the `severity_rank` column).
fn severity_rank(severity: Option<&str>) -> i64 {
    match severity {
        Some("informational") => 1,
        Some("low") => 2,
        Some("medium") => 3,
        Some("high") => 4,
        _ => 0,
    }
}

/// An incident's column values, computed before the transaction so it holds the write lock for
/// the statements only.
struct IncidentColumns<'a> {
    incident: &'a Incident,
    update_ns: i64,
    created_ns: i64,
    severity_rank: i64,
    title_folded: Option<String>,
    owner: Option<String>,
    data: String,
}

impl<'a> IncidentColumns<'a> {
    fn of(incident: &'a Incident) -> Self {
        let update_ns = nanos(incident.last_update);
        Self {
            incident,
            update_ns,
            created_ns: incident.created.map_or(update_ns, nanos),
            severity_rank: severity_rank(incident.severity.as_deref()),
            title_folded: incident.title.as_deref().map(str::to_lowercase),
            owner: incident.owner.as_deref().map(str::to_lowercase),
            data: incident.data.to_string(),
        }
    }
}

/// The newest version of each record of a page, in page order: a page may list one twice, and a
/// multi-row upsert may touch each row only once.
fn newest_per_id<'a, T: Copy>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(T) -> (&'a str, i64),
) -> Vec<T> {
    let mut newest: Vec<T> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for item in items {
        let (id, version) = key(item);
        match at.get(id) {
            Some(&i) if key(newest[i]).1 <= version => newest[i] = item,
            Some(_) => {}
            None => {
                at.insert(id, newest.len());
                newest.push(item);
            }
        }
    }
    newest
}

/// Writes one batch idempotently: an incident or alert is only ever replaced by a version with
/// the same or a newer `lastUpdateDateTime`. A page costs a fixed handful of statements (the
/// fence, one read of the stored versions, one upsert each of incidents, sources and alerts),
/// not a few per incident.
pub async fn commit_page(
    db: &Db,
    lease: &Lease,
    incidents: &[Incident],
) -> Result<PageCounts, SyncStoreError> {
    let expires = now_ns() + LEASE_TTL_SECS * 1_000_000_000;
    let now = Utc::now();
    let scope = lease.scope.as_str();
    let columns: Vec<IncidentColumns> = newest_per_id(incidents, |i: &Incident| {
        (i.external_id.as_str(), nanos(i.last_update))
    })
    .into_iter()
    .map(IncidentColumns::of)
    .collect();
    let alerts: Vec<(&str, &Alert, String)> = newest_per_id(
        incidents
            .iter()
            .flat_map(|i| i.alerts.iter().map(move |a| (i.external_id.as_str(), a))),
        |(_, a): (&str, &Alert)| (a.external_id.as_str(), nanos(a.last_update)),
    )
    .into_iter()
    .map(|(incident, alert)| (incident, alert, alert.data.to_string()))
    .collect();
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

        let mut stored: HashMap<String, (String, i64)> = HashMap::new();
        for chunk in columns.chunks(ROWS_PER_STATEMENT) {
            let mut sql =
                DynSql::new("SELECT external_id, id, last_update_ns FROM incidents WHERE scope = ");
            sql.arg(scope).push(" AND external_id IN (");
            sql.list(
                chunk
                    .iter()
                    .map(|c| Arg::from(c.incident.external_id.as_str())),
            );
            sql.push(")");
            let rows: Vec<(String, String, i64)> =
                dyn_query!(sqlx::query_as, sql).fetch_all(&mut *tx).await?;
            stored.extend(
                rows.into_iter()
                    .map(|(external, id, ns)| (external, (id, ns))),
            );
        }

        let mut counts = PageCounts {
            fetched: i64::try_from(incidents.len()).unwrap_or(i64::MAX),
            ..PageCounts::default()
        };
        // (columns, id, whether it is stored already)
        let mut writes: Vec<(&IncidentColumns, String, bool)> = Vec::new();
        for c in &columns {
            match stored.remove(&c.incident.external_id) {
                None => {
                    counts.created += 1;
                    writes.push((c, ResourceId::generate().to_string(), false));
                }
                Some((id, stored_ns)) if c.update_ns > stored_ns => {
                    counts.updated += 1;
                    writes.push((c, id, true));
                }
                Some(_) => {}
            }
        }

        for chunk in writes.chunks(ROWS_PER_STATEMENT) {
            let mut sql = DynSql::new(
                "INSERT INTO incidents (id, scope, external_id, status, severity, severity_rank, \
                 title, title_folded, owner, last_update_ns, created_ns, data, first_synced_at, \
                 tenant_id) VALUES ",
            );
            sql.rows(chunk.iter().map(|(c, id, _)| {
                let i = c.incident;
                [
                    Arg::from(id.as_str()),
                    scope.into(),
                    i.external_id.as_str().into(),
                    i.status.as_deref().into(),
                    i.severity.as_deref().into(),
                    c.severity_rank.into(),
                    i.title.as_deref().into(),
                    c.title_folded.as_deref().into(),
                    c.owner.as_deref().into(),
                    c.update_ns.into(),
                    c.created_ns.into(),
                    c.data.as_str().into(),
                    now.into(),
                    i.tenant_id.as_deref().into(),
                ]
            }));
            // An existing incident keeps its id and first sync time.
            sql.push(
                " ON CONFLICT (scope, external_id) DO UPDATE SET status = excluded.status, \
                 severity = excluded.severity, severity_rank = excluded.severity_rank, \
                 title = excluded.title, title_folded = excluded.title_folded, \
                 owner = excluded.owner, last_update_ns = excluded.last_update_ns, \
                 created_ns = excluded.created_ns, data = excluded.data, \
                 tenant_id = excluded.tenant_id \
                 WHERE incidents.last_update_ns <= excluded.last_update_ns",
            );
            dyn_query!(sqlx::query, sql).execute(&mut *tx).await?;

            let replaced: Vec<Arg> = chunk
                .iter()
                .filter(|(_, _, stored)| *stored)
                .map(|(_, id, _)| Arg::from(id.as_str()))
                .collect();
            if !replaced.is_empty() {
                let mut sql = DynSql::new("DELETE FROM incident_sources WHERE incident_id IN (");
                sql.list(replaced);
                sql.push(")");
                dyn_query!(sqlx::query, sql).execute(&mut *tx).await?;
            }
            let sources: Vec<[Arg; 3]> = chunk
                .iter()
                .flat_map(|(c, id, _)| {
                    c.incident.sources.iter().map(|s| {
                        [
                            Arg::from(id.as_str()),
                            s.as_str().into(),
                            c.update_ns.into(),
                        ]
                    })
                })
                .collect();
            for rows in sources.chunks(ROWS_PER_STATEMENT) {
                let mut sql = DynSql::new(
                    "INSERT INTO incident_sources (incident_id, source, last_update_ns) VALUES ",
                );
                sql.rows(rows.iter().copied());
                sql.push(" ON CONFLICT DO NOTHING");
                dyn_query!(sqlx::query, sql).execute(&mut *tx).await?;
            }
        }

        for chunk in alerts.chunks(ROWS_PER_STATEMENT) {
            let mut sql = DynSql::new(
                "INSERT INTO incident_alerts (scope, external_id, incident_external_id, \
                 last_update_ns, data) VALUES ",
            );
            sql.rows(chunk.iter().map(|(incident, alert, data)| {
                [
                    Arg::from(scope),
                    alert.external_id.as_str().into(),
                    (*incident).into(),
                    nanos(alert.last_update).into(),
                    data.as_str().into(),
                ]
            }));
            sql.push(
                " ON CONFLICT (scope, external_id) DO UPDATE SET \
                 incident_external_id = excluded.incident_external_id, \
                 last_update_ns = excluded.last_update_ns, data = excluded.data \
                 WHERE excluded.last_update_ns >= incident_alerts.last_update_ns",
            );
            dyn_query!(sqlx::query, sql).execute(&mut *tx).await?;
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

/// The orders an incident list can come in, newest first; each has its own keyset index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentSort {
    /// Last update (the default).
    #[default]
    Updated,
    /// Creation time.
    Created,
    /// Severity (high first), then last update.
    Severity,
}

/// Where a page starts: the sort keys of the last incident of the previous one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    keys: Vec<i64>,
    id: String,
}

impl IncidentSort {
    /// The cursor after `row`: `{updated_ns}.{id}`, `c{created_ns}.{id}` or
    /// `s{rank}.{updated_ns}.{id}`.
    pub fn cursor(self, row: &IncidentRow) -> String {
        match self {
            Self::Updated => format!("{}.{}", row.last_update_ns, row.id),
            Self::Created => format!("c{}.{}", row.created_ns, row.id),
            Self::Severity => format!("s{}.{}.{}", row.severity_rank, row.last_update_ns, row.id),
        }
    }

    /// The sort a cursor was written for (by its prefix).
    pub fn of_cursor(cursor: &str) -> Self {
        match cursor.as_bytes().first() {
            Some(b'c') => Self::Created,
            Some(b's') => Self::Severity,
            _ => Self::Updated,
        }
    }

    /// The position a cursor of this sort names; `None` for anything else (a cursor of another
    /// sort included).
    pub fn position(self, cursor: &str) -> Option<Position> {
        let (keys, id) = cursor.rsplit_once('.')?;
        crate::id::ResourceId::parse(id)?;
        let keys: Vec<&str> = match self {
            Self::Updated => vec![keys],
            Self::Created => vec![keys.strip_prefix('c')?],
            Self::Severity => {
                let (rank, ns) = keys.strip_prefix('s')?.split_once('.')?;
                vec![rank, ns]
            }
        };
        let keys = keys
            .into_iter()
            .map(sort_key)
            .collect::<Option<Vec<i64>>>()?;
        Some(Position {
            keys,
            id: id.to_owned(),
        })
    }

    /// The sort keys after the id column, with the table they are read from.
    fn columns(self, via_sources: bool) -> &'static [&'static str] {
        match (self, via_sources) {
            (Self::Updated, false) => &["i.last_update_ns", "i.id"],
            // The source index carries the update time, so a source filter walks it in order.
            (Self::Updated, true) => &["s.last_update_ns", "s.incident_id"],
            (Self::Created, _) => &["i.created_ns", "i.id"],
            (Self::Severity, _) => &["i.severity_rank", "i.last_update_ns", "i.id"],
        }
    }
}

/// A decimal sort key as cursors write it; nineteen digits may exceed i64, and such a position
/// lies beyond every stored value, so it is clamped rather than refused.
fn sort_key(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !(1..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<i64>().unwrap_or(if text.starts_with('-') {
        i64::MIN
    } else {
        i64::MAX
    }))
}

/// Counting stops here: a list says "more than 1,000" rather than paying for a full count of a
/// large store on every page (a capped count costs the same whatever the store holds).
pub const TOTAL_CAP: i64 = 1_000;

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
    /// Assigned to this user (compared lower-cased).
    pub owner: Option<String>,
    /// Lower-cased text the title contains.
    pub title_contains: Option<String>,
    pub updated_since_ns: Option<i64>,
    pub sort: IncidentSort,
    pub after: Option<Position>,
    pub limit: i64,
}

#[derive(sqlx::FromRow)]
pub struct IncidentRow {
    pub id: String,
    pub scope: String,
    pub external_id: String,
    pub last_update_ns: i64,
    pub created_ns: i64,
    pub severity_rank: i64,
    pub data: String,
}

/// `text` as a `LIKE` pattern matching it anywhere, with `\` escaping its own wildcards.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// `FROM … WHERE …` of a list: only the filters asked for, so that the planner can walk the one
/// index that serves them. Redirected (merged) incidents are hidden unless asked for: a merge
/// shows once, as its target.
fn filtered<'a>(
    sql: &mut DynSql<'a>,
    f: &'a IncidentFilter,
    scope: Option<&'a str>,
    title: Option<&'a str>,
) {
    match &f.source {
        Some(source) => {
            sql.push(" FROM incident_sources s JOIN incidents i ON i.id = s.incident_id WHERE s.source = ")
                .arg(source.as_str());
        }
        None => {
            sql.push(" FROM incidents i WHERE 1 = 1");
        }
    }
    match &f.status {
        Some(status) => sql.push(" AND i.status = ").arg(status.as_str()),
        None => sql.push(" AND (i.status IS NULL OR i.status <> 'redirected')"),
    };
    if let Some(severity) = &f.severity {
        sql.push(" AND i.severity = ").arg(severity.as_str());
    }
    if let Some(scope) = scope {
        sql.push(" AND i.scope = ").arg(scope);
    }
    if let Some(tenant) = &f.tenant_id {
        sql.push(" AND i.tenant_id = ").arg(tenant.as_str());
    }
    if let Some(owner) = &f.owner {
        sql.push(" AND i.owner = ").arg(owner.as_str());
    }
    if let Some(pattern) = title {
        sql.push(" AND i.title_folded LIKE ")
            .arg(pattern)
            .push(" ESCAPE '\\'");
    }
    if let Some(since) = f.updated_since_ns {
        sql.push(" AND i.last_update_ns >= ").arg(since);
    }
}

/// One page of incidents, and how many match (counted up to [`TOTAL_CAP`]; `true`: more do).
pub async fn list_incidents(
    db: &Db,
    f: &IncidentFilter,
) -> Result<(Vec<IncidentRow>, i64, bool), StoreError> {
    // A provider filter is a scope filter: the collection it reads, once a run resolved it.
    let scope: Option<String> = match &f.provider_id {
        None => None,
        Some(provider) => {
            let sql = "SELECT scope FROM provider_scopes WHERE provider_id = $1";
            let found: Option<(String,)> = with_db!(db, |pool| sqlx::query_as(sql)
                .bind(provider)
                .fetch_optional(pool)
                .await?);
            match found {
                Some((scope,)) => Some(scope),
                None => return Ok((Vec::new(), 0, false)),
            }
        }
    };
    let title = f.title_contains.as_deref().map(contains_pattern);
    let columns = f.sort.columns(f.source.is_some());

    let mut page = DynSql::new(
        "SELECT i.id, i.scope, i.external_id, i.last_update_ns, i.created_ns, i.severity_rank, i.data",
    );
    filtered(&mut page, f, scope.as_deref(), title.as_deref());
    if let Some(after) = &f.after {
        // A row-value comparison: one index range on both backends.
        page.push(" AND (");
        push_columns(&mut page, columns, "");
        page.push(") < (")
            .list(after.keys.iter().map(|k| Arg::from(*k)))
            .push(", ")
            .arg(after.id.as_str())
            .push(")");
    }
    page.push(" ORDER BY ");
    push_columns(&mut page, columns, " DESC");
    page.push(" LIMIT ").arg(f.limit);
    let rows: Vec<IncidentRow> = with_db!(db, |pool| dyn_query!(sqlx::query_as, page)
        .fetch_all(pool)
        .await?);

    // Ordered like the page, so the planner walks the same index and stops at the cap (unordered,
    // PostgreSQL may build a bitmap of every match first).
    let mut count = DynSql::new("SELECT COUNT(*) FROM (SELECT 1");
    filtered(&mut count, f, scope.as_deref(), title.as_deref());
    count.push(" ORDER BY ");
    push_columns(&mut count, columns, " DESC");
    count.push(" LIMIT ").arg(TOTAL_CAP + 1).push(") matching");
    let counted: i64 = with_db!(db, |pool| dyn_query!(sqlx::query_scalar, count)
        .fetch_one(pool)
        .await?);
    Ok((rows, counted.min(TOTAL_CAP), counted > TOTAL_CAP))
}

fn push_columns(sql: &mut DynSql<'_>, columns: &[&'static str], suffix: &'static str) {
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push(column).push(suffix);
    }
}

pub async fn get_incident(db: &Db, id: &str) -> Result<Option<IncidentRow>, StoreError> {
    let sql = "SELECT id, scope, external_id, last_update_ns, created_ns, severity_rank, data \
               FROM incidents WHERE id = $1";
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
