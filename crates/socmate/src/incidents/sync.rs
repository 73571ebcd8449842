//! The sync engine: one run reads every page of a provider's window, commits page by page, and
//! moves the watermark only after the whole window was read.
//!
//! Correctness comes from the store, not from timing: pages are upserted idempotently (never an
//! older version over a newer one), the watermark is the newest `lastUpdateDateTime` actually
//! seen (never "now") minus a look-back margin on the next run, and a lease with a fencing
//! generation makes one replica at a time sync a provider. A crash at any point therefore loses
//! nothing (the window is re-read) and duplicates nothing (unique `(scope, external id)`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::store::{self, Lease, SyncStoreError};
use crate::providers::{ProviderError, Providers};
use crate::siem::incidents::nanos;
use crate::siem::{FetchError, IncidentPage, PageRequest, SiemConnector};

/// The sync settings; their defaults are declared once, in `config::ServeArgs`.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Time between scheduled runs; zero disables the scheduler (on-demand runs still work).
    pub interval: Duration,
    /// How far before the watermark each run starts reading, for late-arriving updates.
    pub lookback: Duration,
    /// How far back the very first run reads.
    pub first_window: Duration,
}

/// Retry policy for one page: capped, jittered exponential backoff; `Retry-After` wins.
const MAX_ATTEMPTS: u32 = 5;
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// A page request never waits longer than this for the SIEM.
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, PartialEq, Eq)]
pub enum RunOutcome {
    Completed {
        fetched: i64,
        created: i64,
        updated: i64,
    },
    /// Another replica holds the lease, or this process is already syncing the provider.
    Skipped,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("{0}")]
    Fetch(FetchError),
    #[error(transparent)]
    Store(#[from] SyncStoreError),
    #[error("interrupted by shutdown")]
    Interrupted,
}

impl SyncError {
    fn code(&self) -> &'static str {
        match self {
            Self::Provider(ProviderError::CredentialUnreadable(_)) => "credential_unreadable",
            Self::Provider(_) => "provider_unavailable",
            Self::Fetch(e) => e.code(),
            Self::Store(_) => "store_error",
            Self::Interrupted => "interrupted",
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Fetch(FetchError::Denied { hint, .. }) => hint.clone(),
            Self::Fetch(FetchError::Throttled { .. }) => {
                "the SIEM kept throttling; the next run resumes from the last watermark".into()
            }
            other => other.to_string(),
        }
    }
}

#[derive(Clone)]
pub struct IncidentSync {
    providers: Providers,
    instance_id: String,
    settings: SyncSettings,
    running: Arc<Mutex<HashSet<String>>>,
    shutdown: CancellationToken,
}

/// Removes a provider from the local "running" set however a run ends.
struct RunningGuard {
    running: Arc<Mutex<HashSet<String>>>,
    provider_id: String,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.provider_id);
    }
}

impl IncidentSync {
    pub fn new(
        providers: Providers,
        instance_id: String,
        settings: SyncSettings,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            providers,
            instance_id,
            settings,
            running: Arc::default(),
            shutdown,
        }
    }

    pub fn db(&self) -> &crate::store::Db {
        &self.providers.db
    }

    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    /// Starts a run in the background now (the on-demand trigger).
    pub fn start_now(&self, provider_id: String) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.run_once(&provider_id).await {
                tracing::warn!(provider.id = %provider_id, error = %e, "incident sync run failed");
            }
        });
    }

    /// Syncs one provider once. Public so tests and the trigger drive it directly.
    pub async fn run_once(&self, provider_id: &str) -> Result<RunOutcome, SyncError> {
        let Some(_guard) = self.claim_locally(provider_id) else {
            return Ok(RunOutcome::Skipped);
        };
        let Some(lease) =
            store::acquire_lease(&self.providers.db, provider_id, &self.instance_id).await?
        else {
            tracing::debug!(
                provider.id = provider_id,
                "another replica holds the sync lease"
            );
            return Ok(RunOutcome::Skipped);
        };
        tracing::info!(provider.id = provider_id, generation = lease.generation, watermark = ?lease.watermark, "incident sync started");
        match self.read_window(&lease).await {
            Ok((counts, watermark)) => {
                metrics::counter!("socmate_sync_runs_total", "outcome" => "success").increment(1);
                metrics::counter!("socmate_sync_incidents_total", "kind" => "fetched")
                    .increment(counts.0.unsigned_abs());
                metrics::counter!("socmate_sync_incidents_total", "kind" => "created")
                    .increment(counts.1.unsigned_abs());
                metrics::counter!("socmate_sync_incidents_total", "kind" => "updated")
                    .increment(counts.2.unsigned_abs());
                if let Some((_, ns)) = &watermark {
                    // Lag: how far the newest synced update is behind now.
                    let lag = (nanos(chrono::Utc::now()) - ns) as f64 / 1e9;
                    metrics::gauge!("socmate_sync_watermark_lag_seconds", "provider_id" => provider_id.to_owned()).set(lag);
                }
                store::finish(
                    &self.providers.db,
                    &lease,
                    watermark.as_ref().map(|(s, ns)| (s.as_str(), *ns)),
                    None,
                )
                .await?;
                tracing::info!(
                    provider.id = provider_id,
                    fetched = counts.0,
                    created = counts.1,
                    updated = counts.2,
                    "incident sync finished"
                );
                Ok(RunOutcome::Completed {
                    fetched: counts.0,
                    created: counts.1,
                    updated: counts.2,
                })
            }
            Err(SyncError::Store(SyncStoreError::LeaseLost)) => {
                tracing::warn!(
                    provider.id = provider_id,
                    "sync lease lost to another replica; this run stops without writing"
                );
                Err(SyncError::Store(SyncStoreError::LeaseLost))
            }
            Err(e) => {
                metrics::counter!("socmate_sync_runs_total", "outcome" => e.code()).increment(1);
                // Whatever went wrong is recorded; "could not read" never looks like "nothing new".
                store::finish(
                    &self.providers.db,
                    &lease,
                    None,
                    Some((e.code(), &e.message())),
                )
                .await?;
                Err(e)
            }
        }
    }

    fn claim_locally(&self, provider_id: &str) -> Option<RunningGuard> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running
            .insert(provider_id.to_owned())
            .then(|| RunningGuard {
                running: Arc::clone(&self.running),
                provider_id: provider_id.to_owned(),
            })
    }

    /// Reads every page of the window; returns the counts and the newest update seen.
    async fn read_window(
        &self,
        lease: &Lease,
    ) -> Result<((i64, i64, i64), Option<(String, i64)>), SyncError> {
        let (_, connector) = self.providers.connector_for(&lease.provider_id).await?;
        let scope = connector.incident_scope();
        let since = match lease.watermark_ns {
            Some(ns) => DateTime::<Utc>::from_timestamp_nanos(ns) - self.settings.lookback,
            None => Utc::now() - self.settings.first_window,
        };
        let mut request = PageRequest::First {
            updated_since: since.to_rfc3339_opts(SecondsFormat::Secs, true),
        };
        let mut newest: Option<(String, i64)> = None;
        let mut totals = (0, 0, 0);
        loop {
            if self.shutdown.is_cancelled() {
                return Err(SyncError::Interrupted);
            }
            let page = self
                .fetch_with_retries(connector.as_ref(), &request)
                .await?;
            for reason in &page.skipped {
                tracing::warn!(provider.id = %lease.provider_id, reason, "skipping an unreadable incident record");
            }
            for incident in &page.incidents {
                let ns = nanos(incident.last_update);
                if newest.as_ref().is_none_or(|(_, n)| ns > *n) {
                    let text = incident
                        .data
                        .get("last_update_at")
                        .and_then(|v| v.as_str())
                        .map_or_else(
                            || {
                                incident
                                    .last_update
                                    .to_rfc3339_opts(SecondsFormat::AutoSi, true)
                            },
                            str::to_owned,
                        );
                    newest = Some((text, ns));
                }
            }
            let counts =
                store::commit_page(&self.providers.db, lease, &scope, &page.incidents).await?;
            totals = (
                totals.0 + counts.fetched,
                totals.1 + counts.created,
                totals.2 + counts.updated,
            );
            match page.next {
                Some(next) => request = PageRequest::Next(next),
                None => return Ok((totals, newest)),
            }
        }
    }

    async fn fetch_with_retries(
        &self,
        connector: &dyn SiemConnector,
        request: &PageRequest,
    ) -> Result<IncidentPage, SyncError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let deadline = Instant::now() + PAGE_TIMEOUT;
            match connector.incident_page(request.clone(), deadline).await {
                Ok(page) => return Ok(page),
                Err(e) if e.is_transient() && attempt < MAX_ATTEMPTS => {
                    let wait = e
                        .retry_after()
                        .unwrap_or_else(|| backoff(attempt))
                        .min(BACKOFF_CAP);
                    tracing::info!(error = %e, attempt, wait_ms = wait.as_millis() as u64, "incident page failed; retrying");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return Err(SyncError::Interrupted),
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                Err(e) => return Err(SyncError::Fetch(e)),
            }
        }
    }

    /// Runs the scheduler until shutdown: every interval, and whenever providers change, each live
    /// provider that is the default or opted in is synced, each in its own task so a failing one
    /// never delays the others (one already running is skipped).
    pub async fn run_scheduler(self) {
        if self.settings.interval.is_zero() {
            return;
        }
        let mut ticker = tokio::time::interval(self.settings.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = ticker.tick() => {}
                _ = self.providers.changed.notified() => {}
            }
            let providers = match self.providers.list().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "incident sync: cannot list providers");
                    continue;
                }
            };
            for provider in providers
                .into_iter()
                .filter(|p| p.is_default || p.sync_incidents)
            {
                self.start_now(provider.id);
            }
        }
    }
}

/// Full-jitter exponential backoff.
fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1 << attempt.min(10))
        .min(BACKOFF_CAP);
    let mut byte = [0u8; 1];
    crate::crypto::fill_random(&mut byte);
    ceiling
        .mul_f64(f64::from(byte[0]) / 255.0)
        .max(Duration::from_millis(50))
}
