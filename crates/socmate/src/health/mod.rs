//! Provider health you can watch: every live provider is checked in the background, each check
//! is kept for a while, and changes are announced.
//!
//! Every `SOCMATE_HEALTH_INTERVAL` seconds (jittered by ±10 % so replicas and providers spread
//! out) each live provider gets the seed's saved-provider test. The replica that moves a
//! provider's due time forward in `health_schedule` runs its check, so one replica checks each
//! provider at a time. A check updates `status`, `last_health_check` and `last_health_status`
//! exactly as `POST …/{id}/test` does, is kept in `health_checks` for
//! `SOCMATE_HEALTH_RETENTION_DAYS`, and a change of state is audited (actor `system`) and
//! announced (`provider.health.changed`). After each check the provider's incident sync
//! freshness and client secret expiry are looked at too: a sync that has not succeeded for
//! three sync intervals, or whose last run failed, is flagged and announced once per episode
//! (`provider.sync.failing`); a secret is announced at 30, 7 and 1 days before its expiry
//! (`provider.secret.expiring`).

pub mod store;

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::{ApiError, AppQuery, page};
use crate::providers::Providers;
use crate::providers::model::{HealthStatus, Provider, optional_timestamp};
use crate::siem::incidents::nanos;
use store::{HistoryEntry, Source};

#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// Between background checks of a provider; zero turns them off.
    pub interval: Duration,
    pub retention: Duration,
    /// The incident sync interval, against which freshness is judged (zero: no scheduled sync).
    pub sync_interval: Duration,
}

/// Days before a secret's expiry at which it is announced.
const EXPIRY_REMINDERS: [i64; 3] = [1, 7, 30];

#[derive(Clone)]
pub struct HealthWatch {
    providers: Providers,
    settings: HealthSettings,
    /// Providers this process is checking now.
    checking: crate::local_claims::LocalClaims,
    shutdown: CancellationToken,
}

impl HealthWatch {
    pub fn new(
        providers: Providers,
        settings: HealthSettings,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            providers,
            settings,
            checking: Default::default(),
            shutdown,
        }
    }

    /// Runs the background checks until shutdown.
    pub async fn run(self) {
        if self.settings.interval.is_zero() {
            return;
        }
        let tick =
            (self.settings.interval / 4).clamp(Duration::from_millis(250), Duration::from_secs(30));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "health checks: cannot read the providers");
            }
        }
    }

    /// Starts the check of every provider that is due and claimed by this replica.
    async fn round(&self) -> Result<(), crate::providers::ProviderError> {
        let interval = nanos_of(self.settings.interval);
        for provider in self.providers.list().await? {
            let now = nanos(Utc::now());
            let first = now + jitter(interval, 0.0, 1.0);
            let next = now + jitter(interval, 0.9, 1.1);
            if !store::claim_due(&self.providers.db, &provider.id, first, next).await? {
                continue;
            }
            let Some(claim) = self.checking.claim(&provider.id) else {
                continue;
            };
            let this = self.clone();
            tokio::spawn(async move {
                let _claim = claim;
                this.check(provider).await;
            });
        }
        Ok(())
    }

    /// One background check of `provider`, and what follows from it.
    async fn check(&self, provider: Provider) {
        let result = match self.providers.run_check(&provider.id).await {
            Ok(result) => result,
            Err(e) => {
                tracing::warn!(provider.id = %provider.id, error = %e, "health check could not run");
                return;
            }
        };
        let db = &self.providers.db;
        let recorded = store::record(db, &provider.id, &result, Source::Scheduled).await;
        self.providers.cache.invalidate();
        if let Err(e) = recorded {
            tracing::warn!(provider.id = %provider.id, error = %e, "cannot record a health check");
        }
        if let Err(e) = self.announce_sync_freshness(&provider).await {
            tracing::warn!(provider.id = %provider.id, error = %e, "cannot judge sync freshness");
        }
        if let Err(e) = announce_expiry(db, &provider).await {
            tracing::warn!(provider.id = %provider.id, error = %e, "cannot announce secret expiry");
        }
    }

    async fn announce_sync_freshness(
        &self,
        provider: &Provider,
    ) -> Result<(), crate::store::StoreError> {
        let freshness = self.sync_freshness(provider).await?;
        if freshness.status != "stale" {
            return Ok(());
        }
        let db = &self.providers.db;
        let episode = format!(
            "sync-stale:{}:{}",
            provider.id,
            freshness
                .last_success_at
                .map_or_else(|| "never".to_owned(), |t| t.to_rfc3339())
        );
        if crate::notify::mark_once(db, &episode).await? {
            let body = crate::notify::event_body(
                "provider.sync.failing",
                Utc::now(),
                json!({
                    "provider_id": provider.id,
                    "provider_name": provider.name,
                    "reason": freshness.reason,
                    "last_success_at": freshness.last_success_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                }),
            );
            crate::notify::enqueue(db, "provider.sync.failing", &body).await?;
        }
        Ok(())
    }

    /// Whether `provider`'s incidents are current.
    async fn sync_freshness(
        &self,
        provider: &Provider,
    ) -> Result<SyncFreshness, crate::store::StoreError> {
        let interval = self.settings.sync_interval;
        if !(provider.is_default || provider.sync_incidents) || interval.is_zero() {
            return Ok(SyncFreshness::not_synced());
        }
        let status = crate::incidents::store::status(&self.providers.db, &provider.id).await?;
        let allowed = TimeDelta::from_std(interval * 3).unwrap_or(TimeDelta::MAX);
        let now = Utc::now();
        let reason = if let Some(error) = &status.last_error {
            Some(format!(
                "the last incident sync failed ({}): {}",
                error.code, error.message
            ))
        } else {
            match status.last_success_at {
                Some(at) if now - at > allowed => Some(format!(
                    "no incident sync has succeeded for {} minutes",
                    (now - at).num_minutes()
                )),
                None if now - provider.created_at > allowed => {
                    Some("no incident sync has succeeded yet".to_owned())
                }
                _ => None,
            }
        };
        Ok(SyncFreshness {
            status: if reason.is_some() { "stale" } else { "fresh" },
            reason,
            last_success_at: status.last_success_at,
        })
    }
}

/// Announces a secret nearing its expiry once per reminder: the nearest reminder reached.
async fn announce_expiry(
    db: &crate::store::Db,
    provider: &Provider,
) -> Result<(), crate::store::StoreError> {
    let Some(expires_at) = provider.client_secret_expires_at else {
        return Ok(());
    };
    let left = expires_at - Utc::now();
    let Some(days) = EXPIRY_REMINDERS
        .into_iter()
        .find(|d| left <= TimeDelta::days(*d))
    else {
        return Ok(());
    };
    let mark = format!(
        "secret-expiry:{}:{}:{days}",
        provider.id,
        expires_at.timestamp()
    );
    if crate::notify::mark_once(db, &mark).await? {
        let body = crate::notify::event_body(
            "provider.secret.expiring",
            Utc::now(),
            json!({
                "provider_id": provider.id,
                "provider_name": provider.name,
                "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "days_left": left.num_days().max(0),
                "reminder_days": days,
            }),
        );
        crate::notify::enqueue(db, "provider.secret.expiring", &body).await?;
    }
    Ok(())
}

fn nanos_of(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// `interval` scaled by a random factor in `[low, high)`.
fn jitter(interval: i64, low: f64, high: f64) -> i64 {
    let mut byte = [0u8; 2];
    crate::crypto::fill_random(&mut byte);
    let unit = f64::from(u16::from_le_bytes(byte)) / 65_536.0;
    (interval as f64 * (low + (high - low) * unit)) as i64
}

/// Whether a provider's incident sync keeps up.
#[derive(Debug, Serialize, ToSchema)]
struct SyncFreshness {
    /// `fresh`, `stale` or `not_synced` (neither the default nor opted in, or no scheduled sync).
    #[schema(value_type = String)]
    status: &'static str,
    reason: Option<String>,
    #[serde(serialize_with = "optional_timestamp")]
    #[schema(value_type = Option<String>, format = DateTime)]
    last_success_at: Option<DateTime<Utc>>,
}

impl SyncFreshness {
    fn not_synced() -> Self {
        Self {
            status: "not_synced",
            reason: None,
            last_success_at: None,
        }
    }
}

/// `GET /api/admin/siem-providers/{id}/health`.
pub fn admin_routes() -> OpenApiRouter<HealthWatch> {
    OpenApiRouter::new().routes(routes!(health))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct HealthQuery {
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct HealthPage {
    summary: Summary,
    /// Newest first.
    history: Vec<HistoryEntry>,
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct Summary {
    /// `healthy`, `error`, or absent before the first check.
    #[schema(value_type = Option<String>)]
    state: Option<&'static str>,
    /// Share of checks that passed over the last 24 hours (absent without checks).
    uptime_24h: Option<f64>,
    uptime_7d: Option<f64>,
    /// When the current state began (as far as the history reaches).
    #[serde(serialize_with = "optional_timestamp")]
    #[schema(value_type = Option<String>, format = DateTime)]
    state_since: Option<DateTime<Utc>>,
    /// The latest failed check, with its failing step's code and hint.
    last_failure: Option<HistoryEntry>,
    /// One bucket per hour of the last 24 hours, oldest first.
    timeline_24h: Vec<Bucket>,
    /// One bucket per day of the last 7 days, oldest first.
    timeline_7d: Vec<Bucket>,
    sync: SyncFreshness,
}

#[derive(Serialize, ToSchema)]
struct Bucket {
    #[serde(serialize_with = "crate::providers::model::timestamp")]
    #[schema(value_type = String, format = DateTime)]
    start: DateTime<Utc>,
    healthy: u32,
    error: u32,
}

/// A provider's health: summary, and its kept checks newest first.
#[utoipa::path(get, path = "/{id}/health", tag = "SIEM providers (admin)",
    params(("id" = String, Path, description = "Provider id"), HealthQuery),
    responses((status = 200, description = "Health summary and history", body = HealthPage)))]
async fn health(
    State(watch): State<HealthWatch>,
    Path(id): Path<String>,
    AppQuery(q): AppQuery<HealthQuery>,
) -> Result<Json<HealthPage>, ApiError> {
    let provider = watch.providers.get(&id).await?;
    let db = &watch.providers.db;
    let limit = page::limit(q.limit, 200)?;
    let before = page::seq_cursor(q.cursor.as_deref())?;
    let mut history = store::history(db, &provider.id, before, limit + 1).await?;
    let next_cursor = page::next_cursor(&mut history, limit, |e| e.seq.to_string());

    let now = Utc::now();
    let week = store::since(db, &provider.id, now - TimeDelta::days(7)).await?;
    let day_start = now - TimeDelta::hours(24);
    let uptime = |from: DateTime<Utc>| {
        let (passed, total) = week
            .iter()
            .filter(|(at, _)| *at >= from)
            .fold((0u32, 0u32), |(p, t), (_, ok)| (p + u32::from(*ok), t + 1));
        (total > 0).then(|| f64::from(passed) / f64::from(total))
    };
    let buckets = |count: i64, width: TimeDelta| -> Vec<Bucket> {
        let first = now - width * i32::try_from(count).unwrap_or(i32::MAX);
        (0..count)
            .map(|i| {
                let start = first + width * i32::try_from(i).unwrap_or(0);
                let end = start + width;
                let within = week.iter().filter(|(at, _)| *at >= start && *at < end);
                let (healthy, error) =
                    within.fold(
                        (0, 0),
                        |(h, e), (_, ok)| if *ok { (h + 1, e) } else { (h, e + 1) },
                    );
                Bucket {
                    start,
                    healthy,
                    error,
                }
            })
            .collect()
    };
    let state = provider.last_health_status.map(HealthStatus::as_str);
    let state_since = match state {
        Some(state) => store::state_since(db, &provider.id, state).await?,
        None => None,
    };
    let summary = Summary {
        state,
        uptime_24h: uptime(day_start),
        uptime_7d: uptime(now - TimeDelta::days(7)),
        state_since,
        last_failure: store::last_failure(db, &provider.id).await?,
        timeline_24h: buckets(24, TimeDelta::hours(1)),
        timeline_7d: buckets(7, TimeDelta::days(1)),
        sync: watch.sync_freshness(&provider).await?,
    };
    Ok(Json(HealthPage {
        summary,
        history,
        next_cursor,
    }))
}
