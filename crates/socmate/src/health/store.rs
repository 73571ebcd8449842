//! Health history, the check schedule, and recording a check with what it changes.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use crate::audit::{AuditContext, audit_row};
use crate::notify::event_row;
use crate::providers::model::{ConnectionTestResult, HealthStatus, ProviderStatus, timestamp};
use crate::siem::CheckStatus;
use crate::siem::incidents::nanos;
use crate::store::{Db, StoreError, in_write_tx, with_db};

/// Who ran a check.
pub enum Source<'a> {
    /// The background schedule (audited only when the state changes, by "system").
    Scheduled,
    /// `POST …/{id}/test`, audited as `provider.test` as the seed describes.
    Manual(&'a AuditContext),
}

/// The actor of what the background does.
pub fn system() -> AuditContext {
    AuditContext {
        actor: "system".to_owned(),
        actor_role: "system",
        request_id: None,
        client_addr: None,
    }
}

/// Records a check of a live provider: its status and last check (as the seed's test does), a
/// history row, the audit row, and — when the state changed — a `provider.health.changed`
/// event, all in one transaction. `false` when the provider is gone.
pub async fn record(
    db: &Db,
    provider_id: &str,
    result: &ConnectionTestResult,
    source: Source<'_>,
) -> Result<bool, StoreError> {
    let now = Utc::now();
    let status = match result.status {
        HealthStatus::Healthy => ProviderStatus::Active,
        HealthStatus::Error => ProviderStatus::Error,
    };
    let checks = serde_json::to_string(&result.checks).unwrap_or_else(|_| "[]".to_owned());
    let system = system();
    let source_name = match source {
        Source::Scheduled => "scheduled",
        Source::Manual(_) => "manual",
    };
    let recorded = in_write_tx!(db, |tx| {
        let previous: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT name, last_health_status FROM siem_providers \
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(provider_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((name, previous)) = previous else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE siem_providers SET status = $2, last_health_check = $3, \
             last_health_status = $4, updated_at = $3 WHERE id = $1",
        )
        .bind(provider_id)
        .bind(status.as_str())
        .bind(now)
        .bind(result.status.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO health_checks (provider_id, checked_at, status, latency_ms, checks, source) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(provider_id)
        .bind(now)
        .bind(result.status.as_str())
        .bind(result.latency_ms)
        .bind(&checks)
        .bind(source_name)
        .execute(&mut *tx)
        .await?;
        // A first check that passes is not news; one that fails is.
        let changed = match previous.as_deref() {
            Some(before) => before != result.status.as_str(),
            None => result.status == HealthStatus::Error,
        };
        match source {
            Source::Manual(ctx) => {
                audit_row!(
                    &mut *tx,
                    ctx,
                    "provider.test",
                    Some(provider_id),
                    result.status.as_str(),
                    None::<&str>
                )?;
            }
            Source::Scheduled if changed => {
                let detail = format!(
                    "{} -> {}",
                    previous.as_deref().unwrap_or("untested"),
                    result.status.as_str()
                );
                audit_row!(
                    &mut *tx,
                    &system,
                    "provider.health",
                    Some(provider_id),
                    result.status.as_str(),
                    Some(detail.as_str())
                )?;
            }
            Source::Scheduled => {}
        }
        if changed {
            let failing = result
                .checks
                .iter()
                .find(|c| c.status == CheckStatus::Failed)
                .map(|c| json!({"name": c.name, "code": c.code, "hint": c.hint}));
            let body = crate::notify::event_body(
                "provider.health.changed",
                now,
                json!({
                    "provider_id": provider_id,
                    "provider_name": name,
                    "state": result.status.as_str(),
                    "previous_state": previous,
                    "failing_check": failing,
                    "checked_by": source_name,
                }),
            );
            event_row!(&mut *tx, "provider.health.changed", &body)?;
        }
        Ok::<_, StoreError>(true)
    })?;
    if recorded {
        let healthy = f64::from(u8::from(result.status == HealthStatus::Healthy));
        metrics::gauge!("socmate_provider_health", "provider_id" => provider_id.to_owned())
            .set(healthy);
        for check in &result.checks {
            metrics::histogram!("socmate_health_check_latency_seconds", "check" => check.name)
                .record(check.latency_ms / 1000.0);
        }
    }
    Ok(recorded)
}

/// Claims `provider_id`'s scheduled check when it is due, moving the next one to `next_ns`.
/// Exactly one replica's claim succeeds per due time. A provider seen for the first time is
/// first due at `first_ns`.
pub async fn claim_due(
    db: &Db,
    provider_id: &str,
    first_ns: i64,
    next_ns: i64,
) -> Result<bool, StoreError> {
    let now = nanos(Utc::now());
    Ok(with_db!(db, |pool| {
        sqlx::query(
            "INSERT INTO health_schedule (provider_id, next_due_ns) VALUES ($1, $2) \
             ON CONFLICT (provider_id) DO NOTHING",
        )
        .bind(provider_id)
        .bind(first_ns)
        .execute(pool)
        .await?;
        sqlx::query(
            "UPDATE health_schedule SET next_due_ns = $2 WHERE provider_id = $1 AND next_due_ns <= $3",
        )
        .bind(provider_id)
        .bind(next_ns)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected()
            == 1
    }))
}

/// One kept check, as `GET …/{id}/health` lists it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    #[serde(skip)]
    pub seq: i64,
    #[serde(serialize_with = "timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub checked_at: DateTime<Utc>,
    /// `healthy` or `error`.
    pub status: String,
    pub latency_ms: f64,
    /// Each check with its status, latency, and code and hint when it did not pass.
    #[schema(value_type = Vec<Object>)]
    pub checks: serde_json::Value,
    /// `scheduled` or `manual`.
    pub source: String,
}

type HistoryRow = (i64, DateTime<Utc>, String, f64, String, String);

fn entry((seq, checked_at, status, latency_ms, checks, source): HistoryRow) -> HistoryEntry {
    HistoryEntry {
        seq,
        checked_at,
        status,
        latency_ms,
        // Written by `record` from the checks it was given; unreadable only if edited by hand.
        checks: serde_json::from_str(&checks).unwrap_or_default(),
        source,
    }
}

/// A page of `provider_id`'s history, newest first, before `before` (a `seq`).
pub async fn history(
    db: &Db,
    provider_id: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<HistoryEntry>, StoreError> {
    let sql = "SELECT seq, checked_at, status, latency_ms, checks, source FROM health_checks \
               WHERE provider_id = $1 AND ($2 IS NULL OR seq < $2) ORDER BY seq DESC LIMIT $3";
    let rows: Vec<HistoryRow> = with_db!(db, |pool| {
        sqlx::query_as(sql)
            .bind(provider_id)
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await?
    });
    Ok(rows.into_iter().map(entry).collect())
}

/// `(checked_at, healthy)` of every check of `provider_id` since `since`, oldest first.
pub async fn since(
    db: &Db,
    provider_id: &str,
    since: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, bool)>, StoreError> {
    let sql = "SELECT checked_at, status FROM health_checks WHERE provider_id = $1 \
               AND checked_at >= $2 ORDER BY seq";
    let rows: Vec<(DateTime<Utc>, String)> = with_db!(db, |pool| {
        sqlx::query_as(sql)
            .bind(provider_id)
            .bind(since)
            .fetch_all(pool)
            .await?
    });
    Ok(rows
        .into_iter()
        .map(|(at, status)| (at, status == HealthStatus::Healthy.as_str()))
        .collect())
}

/// The latest check that failed, if any is kept.
pub async fn last_failure(db: &Db, provider_id: &str) -> Result<Option<HistoryEntry>, StoreError> {
    let sql = "SELECT seq, checked_at, status, latency_ms, checks, source FROM health_checks \
               WHERE provider_id = $1 AND status = 'error' ORDER BY seq DESC LIMIT 1";
    let row: Option<HistoryRow> = with_db!(db, |pool| {
        sqlx::query_as(sql)
            .bind(provider_id)
            .fetch_optional(pool)
            .await?
    });
    Ok(row.map(entry))
}

/// When the provider's current state began: the first check after the last one in another
/// state (or the first kept check).
pub async fn state_since(
    db: &Db,
    provider_id: &str,
    current: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let sql = "SELECT MIN(checked_at) FROM health_checks WHERE provider_id = $1 AND seq > \
               COALESCE((SELECT MAX(seq) FROM health_checks WHERE provider_id = $1 AND status <> $2), 0)";
    let at: Option<DateTime<Utc>> = with_db!(db, |pool| {
        sqlx::query_scalar(sql)
            .bind(provider_id)
            .bind(current)
            .fetch_one(pool)
            .await?
    });
    Ok(at)
}
