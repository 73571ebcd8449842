//! The sync engine: a run resolves the provider's scope, takes that scope's lease, has the
//! connector read the whole window batch by batch, and moves the watermark only after a read that
//! saw every incident.
//!
//! Correctness comes from the store, not from timing: batches are upserted idempotently (never an
//! older version over a newer one), the watermark is the newest update actually seen (never
//! "now") minus a look-back margin on the next run, and a lease with a fencing generation makes
//! one replica at a time sync a scope — so providers that read the same scope (two workspaces of
//! one tenant, through Graph) cause one read. A crash at any point therefore loses nothing (the
//! window is re-read) and duplicates nothing (unique `(scope, external id)`).

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::store::{self, Lease, RunEnd, SyncStoreError};
use crate::providers::{ProviderError, Providers};
use crate::siem::incidents::nanos;
use crate::siem::{
    BoxFuture, FetchError, Incident, IncidentScope, IncidentSink, SiemConnector, SyncWindow,
};

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

/// How long one run may take; waits the SIEM asks for (`Retry-After`) count against it.
const RUN_DEADLINE: Duration = Duration::from_secs(30 * 60);
/// How long resolving a provider's scope may take before the scheduler moves on.
const SCOPE_TIMEOUT: Duration = Duration::from_secs(45);

#[derive(Debug, PartialEq, Eq)]
pub enum RunOutcome {
    Completed {
        fetched: i64,
        created: i64,
        updated: i64,
    },
    /// Another replica holds the scope's lease, or this process is already syncing it.
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
    #[error("the read was incomplete: {}", .0.join("; "))]
    Incomplete(Vec<String>),
}

impl SyncError {
    fn code(&self) -> &'static str {
        match self {
            Self::Provider(ProviderError::CredentialUnreadable(_)) => "credential_unreadable",
            Self::Provider(_) => "provider_unavailable",
            Self::Fetch(e) => e.code(),
            Self::Store(_) => "store_error",
            Self::Interrupted => "interrupted",
            Self::Incomplete(_) => "incomplete",
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Fetch(FetchError::Denied { hint, .. }) => hint.clone(),
            Self::Fetch(FetchError::Throttled { .. }) => {
                "the SIEM kept throttling; the next run resumes from the last watermark".into()
            }
            Self::Incomplete(why) => format!(
                "some incidents of the window may be missing ({}); the watermark stays, so the \
                 next run reads the window again",
                why.join("; ")
            ),
            other => other.to_string(),
        }
    }
}

#[derive(Clone)]
pub struct IncidentSync {
    providers: Providers,
    instance_id: String,
    settings: SyncSettings,
    /// Scopes this process is syncing now.
    running: crate::local_claims::LocalClaims,
    shutdown: CancellationToken,
}

/// A connection resolved to its scope, ready to run.
struct Resolved {
    provider_id: String,
    connector: Box<dyn SiemConnector>,
    scope: IncidentScope,
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
            running: Default::default(),
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

    /// Syncs the scope of one provider once. Public so tests and the trigger drive it directly.
    pub async fn run_once(&self, provider_id: &str) -> Result<RunOutcome, SyncError> {
        let resolved = self.resolve(provider_id).await?;
        self.run(resolved).await
    }

    /// Connects to a provider and learns its scope (recording a failure where the provider's
    /// sync status shows it).
    async fn resolve(&self, provider_id: &str) -> Result<Resolved, SyncError> {
        let (provider, connector) = self.providers.connector_for(provider_id).await?;
        let scope = tokio::time::timeout(SCOPE_TIMEOUT, connector.incident_scope())
            .await
            .unwrap_or(Err(FetchError::Timeout));
        let scope = match scope {
            Ok(scope) => scope,
            Err(e) => {
                let e = SyncError::Fetch(e);
                store::record_unresolved(&self.providers.db, provider_id, e.code(), &e.message())
                    .await?;
                return Err(e);
            }
        };
        self.providers
            .record_learned(&provider, connector.learned())
            .await?;
        store::adopt_scope(&self.providers.db, provider_id, &scope.key, &scope.aliases).await?;
        Ok(Resolved {
            provider_id: provider.id,
            connector,
            scope,
        })
    }

    async fn run(&self, resolved: Resolved) -> Result<RunOutcome, SyncError> {
        let Resolved {
            provider_id,
            connector,
            scope,
        } = resolved;
        let Some(_claim) = self.running.claim(&scope.key) else {
            return Ok(RunOutcome::Skipped);
        };
        let db = &self.providers.db;
        let Some(lease) = store::acquire_lease(db, &scope.key, &self.instance_id).await? else {
            tracing::debug!(scope = %scope.key, "another replica holds the sync lease");
            return Ok(RunOutcome::Skipped);
        };
        tracing::info!(provider.id = %provider_id, scope = %scope.key, generation = lease.generation, watermark = ?lease.watermark, "incident sync started");
        let now = Utc::now();
        let since = match lease.watermark_ns {
            Some(ns) => DateTime::<Utc>::from_timestamp_nanos(ns) - self.settings.lookback,
            None => now - self.settings.first_window,
        };
        let window = SyncWindow {
            since,
            // Updates stamped in the same instant as "now" are read by the next run.
            until: now + chrono::TimeDelta::seconds(1),
            deadline: Instant::now() + RUN_DEADLINE,
        };
        let mut sink = StoreSink {
            db: db.clone(),
            lease: lease.clone(),
            counts: (0, 0, 0),
            newest: None,
            skipped: 0,
            skip_reasons: Vec::new(),
            notes: Vec::new(),
            failure: None,
        };
        let read = tokio::select! {
            read = connector.read_incidents(window, &mut sink) => read,
            _ = self.shutdown.cancelled() => Err(FetchError::Stopped("shutdown".into())),
        };
        let outcome = match (read, sink.failure.take()) {
            (_, Some(failure)) => Err(failure),
            (Err(FetchError::Stopped(_)), None) => Err(SyncError::Interrupted),
            (Err(e), None) => Err(SyncError::Fetch(e)),
            (Ok(report), None) if !report.incomplete.is_empty() => {
                Err(SyncError::Incomplete(report.incomplete))
            }
            (Ok(_), None) => Ok(()),
        };
        self.finish(&provider_id, &lease, &sink, outcome).await
    }

    async fn finish(
        &self,
        provider_id: &str,
        lease: &Lease,
        sink: &StoreSink,
        outcome: Result<(), SyncError>,
    ) -> Result<RunOutcome, SyncError> {
        for reason in &sink.skip_reasons {
            tracing::warn!(provider.id = %provider_id, reason, "skipped an unreadable incident record");
        }
        let (fetched, created, updated) = sink.counts;
        let skipped = sink.skipped;
        match outcome {
            Ok(()) => {
                metrics::counter!("socmate_sync_runs_total", "outcome" => "success").increment(1);
                for (kind, n) in [
                    ("fetched", fetched),
                    ("created", created),
                    ("updated", updated),
                ] {
                    metrics::counter!("socmate_sync_incidents_total", "kind" => kind)
                        .increment(n.unsigned_abs());
                }
                if let Some((_, ns)) = &sink.newest {
                    // Lag: how far the newest synced update is behind now.
                    let lag = (nanos(Utc::now()) - ns) as f64 / 1e9;
                    metrics::gauge!("socmate_sync_watermark_lag_seconds", "provider_id" => provider_id.to_owned()).set(lag);
                }
                let end = RunEnd {
                    watermark: sink.newest.as_ref().map(|(s, ns)| (s.as_str(), *ns)),
                    error: None,
                    skipped,
                    notes: &sink.notes,
                };
                store::finish(&self.providers.db, lease, &end).await?;
                tracing::info!(provider.id = %provider_id, fetched, created, updated, skipped, "incident sync finished");
                Ok(RunOutcome::Completed {
                    fetched,
                    created,
                    updated,
                })
            }
            Err(SyncError::Store(SyncStoreError::LeaseLost)) => {
                tracing::warn!(provider.id = %provider_id, "sync lease lost to another replica; this run stops without writing");
                Err(SyncError::Store(SyncStoreError::LeaseLost))
            }
            Err(e) => {
                metrics::counter!("socmate_sync_runs_total", "outcome" => e.code()).increment(1);
                // Whatever went wrong is recorded; "could not read" never looks like "nothing new".
                let message = e.message();
                let end = RunEnd {
                    watermark: None,
                    error: Some((e.code(), &message)),
                    skipped,
                    notes: &sink.notes,
                };
                store::finish(&self.providers.db, lease, &end).await?;
                Err(e)
            }
        }
    }

    /// One round, to its end: the outcome of each run [`Self::start_due_runs`] started.
    pub async fn sync_due(&self) -> Vec<Result<RunOutcome, SyncError>> {
        let mut outcomes = Vec::new();
        for run in self.start_due_runs().await {
            match run.await {
                Ok(outcome) => outcomes.push(outcome),
                Err(e) => tracing::error!(error = %e, "an incident sync task failed"),
            }
        }
        outcomes
    }

    /// Starts one round: every live provider that is the default or opted in, resolved to its
    /// scope, and one run per scope (the default provider's first). Returns once the runs are
    /// started: each runs in its own task, so a failing or long one never delays the others or
    /// the next round (which skips a scope still running).
    async fn start_due_runs(&self) -> Vec<JoinHandle<Result<RunOutcome, SyncError>>> {
        let mut providers = match self.providers.list().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "incident sync: cannot list providers");
                return Vec::new();
            }
        };
        providers.retain(|p| p.is_default || p.sync_incidents);
        providers.sort_by_key(|p| !p.is_default);
        let mut scopes = HashSet::new();
        let mut runs = Vec::new();
        for provider in providers {
            match self.resolve(&provider.id).await {
                Ok(resolved) if scopes.insert(resolved.scope.key.clone()) => {
                    let this = self.clone();
                    runs.push(tokio::spawn(async move {
                        let outcome = this.run(resolved).await;
                        if let Err(e) = &outcome {
                            tracing::warn!(error = %e, "incident sync run failed");
                        }
                        outcome
                    }));
                }
                Ok(_) => {
                    tracing::debug!(provider.id = %provider.id, "its scope is synced through another provider")
                }
                Err(e) => {
                    tracing::warn!(provider.id = %provider.id, error = %e, "incident sync: cannot resolve the provider's scope")
                }
            }
        }
        runs
    }

    /// Runs the scheduler until shutdown: every interval, and whenever providers change. Rounds
    /// never overlap and start at least [`MIN_ROUND_GAP`] apart, and the changes made meanwhile
    /// wake one round (a `Notify` keeps a single permit): a burst of edits (an import, a script)
    /// costs a round a second, not a round (and a token request per provider) per edit.
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
            // Resolving can wait on Entra ID: shutdown does not. The runs started go on by
            // themselves (a dropped handle detaches its task).
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                runs = self.start_due_runs() => drop(runs),
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tokio::time::sleep(MIN_ROUND_GAP) => {}
            }
        }
    }
}

/// The shortest time between the starts of two scheduled rounds.
const MIN_ROUND_GAP: Duration = Duration::from_secs(1);

/// Commits each batch a connector reads, fenced by the run's lease.
struct StoreSink {
    db: crate::store::Db,
    lease: Lease,
    counts: (i64, i64, i64),
    /// The newest update seen: `(Graph's own text, ns)`.
    newest: Option<(String, i64)>,
    /// Records that were not incidents, counted in the sync state.
    skipped: i64,
    /// The first few reasons, for the log.
    skip_reasons: Vec<String>,
    notes: Vec<String>,
    /// Why the run must stop, when the sink refused a batch.
    failure: Option<SyncError>,
}

impl StoreSink {
    fn remember_newest(&mut self, batch: &[Incident]) {
        for incident in batch {
            let ns = nanos(incident.last_update);
            if self.newest.as_ref().is_none_or(|(_, n)| ns > *n) {
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
                self.newest = Some((text, ns));
            }
        }
    }
}

impl IncidentSink for StoreSink {
    fn put(&mut self, batch: Vec<Incident>) -> BoxFuture<'_, Result<(), FetchError>> {
        Box::pin(async move {
            match store::commit_page(&self.db, &self.lease, &batch).await {
                Ok(counts) => {
                    self.counts.0 += counts.fetched;
                    self.counts.1 += counts.created;
                    self.counts.2 += counts.updated;
                    self.remember_newest(&batch);
                    Ok(())
                }
                Err(e) => {
                    let reason = e.to_string();
                    self.failure = Some(SyncError::Store(e));
                    Err(FetchError::Stopped(reason))
                }
            }
        })
    }

    fn skip(&mut self, reason: String) {
        self.skipped = self.skipped.saturating_add(1);
        if self.skip_reasons.len() < 10 {
            self.skip_reasons.push(reason);
        }
    }

    fn note(&mut self, note: String) {
        tracing::info!(scope = %self.lease.scope, note, "incident sync");
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }
}
