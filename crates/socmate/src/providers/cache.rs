//! The live providers, kept in memory ready to serve, so that the reads a console makes all day
//! (the list, a detail, the directory of names) cost no database round trip.
//!
//! A copy is never served stale, by three rules:
//! - **This process's writes** drop the copy once they have committed
//!   ([`ProviderCache::invalidate`]). A copy built from a read that began before such a drop is
//!   refused ([`Ticket`]), so every read that follows a write sees it.
//! - **Other processes' writes** (another replica, a second process on the SQLite file, the CLI)
//!   drop it when the database tells ([`ProviderCache::watch`]): on PostgreSQL a trigger notifies
//!   channel `socmate_providers` at commit and a listening connection hears it; on SQLite a
//!   trigger bumps `provider_revision`, polled every [`POLL`]. Until the watch is up, and
//!   whenever it is down, nothing is kept and every read goes to the database.
//! - **The clock** changes what a provider shows only through its secret's expiry (the status
//!   turns `error`, the warning starts [`SECRET_EXPIRY_WARNING_DAYS`] out and counts the days),
//!   so a copy is fresh until the first such moment.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::postgres::PgListener;
use sqlx::{PgPool, SqlitePool};
use tokio_util::sync::CancellationToken;

use super::model::{Provider, ProviderList, SECRET_EXPIRY_WARNING_DAYS};
use crate::store::{Db, StoreError};

/// How often SQLite's revision counter is read.
pub const POLL: Duration = Duration::from_millis(100);
/// The PostgreSQL channel the `siem_providers` trigger notifies (migration 0013).
const CHANNEL: &str = "socmate_providers";
/// The payload of the watch's own liveness pings (a change notifies with an empty one).
const PING: &str = "ping";
/// How often the PostgreSQL watch pings itself through its channel. A listening connection that
/// hears nothing, not even its own ping, for two periods is deaf (a silently dropped TCP
/// connection reports no error) and is replaced.
const PING_EVERY: Duration = Duration::from_secs(5);
/// How long the watch waits before listening again after losing the database.
const RETRY: Duration = Duration::from_secs(1);

/// The live providers as a read showed them, with their JSON ready to send.
pub struct Snapshot {
    list: ProviderList,
    list_json: Bytes,
    details: HashMap<String, Bytes>,
    /// The first moment at which a provider would show differently (`None`: never by itself).
    fresh_until: Option<DateTime<Utc>>,
}

impl Snapshot {
    /// `providers` as shown at `now` (read no earlier than `now`), in list order.
    pub fn new(providers: Vec<Provider>, now: DateTime<Utc>) -> Result<Self, StoreError> {
        let details = providers
            .iter()
            .map(|p| Ok((p.id.clone(), to_json(p)?)))
            .collect::<Result<_, StoreError>>()?;
        let fresh_until = next_change(&providers, now);
        let list = ProviderList {
            total: providers.len(),
            providers,
        };
        let list_json = to_json(&list)?;
        Ok(Self {
            list,
            list_json,
            details,
            fresh_until,
        })
    }

    pub fn providers(&self) -> &[Provider] {
        &self.list.providers
    }

    pub fn provider(&self, id: &str) -> Option<&Provider> {
        self.list.providers.iter().find(|p| p.id == id)
    }

    /// The list response's body.
    pub fn list_json(&self) -> Bytes {
        self.list_json.clone()
    }

    /// A detail response's body.
    pub fn detail_json(&self, id: &str) -> Option<Bytes> {
        self.details.get(id).cloned()
    }
}

/// A response body. Serialising a provider cannot fail (its connection is a JSON object already),
/// so a failure is reported as a stored value that cannot be shown.
pub fn to_json(value: &impl serde::Serialize) -> Result<Bytes, StoreError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| StoreError::Corrupt(format!("a provider cannot be shown: {e}")))
}

/// The first moment at or after `now` at which one of `providers` shows differently: one of the
/// days its secret's expiry warning counts, from the day it starts to the moment it expires.
fn next_change(providers: &[Provider], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    providers
        .iter()
        .filter_map(|p| p.client_secret_expires_at)
        .filter_map(|expires| {
            (0..=SECRET_EXPIRY_WARNING_DAYS)
                .rev()
                .map(|days| expires - TimeDelta::days(days))
                .find(|moment| *moment >= now)
        })
        .min()
}

/// What the cache holds for a read.
pub enum Lookup {
    Fresh(Arc<Snapshot>),
    /// Nothing fresh: read the database, then [`ProviderCache::offer`] what it showed.
    Miss(Ticket),
    /// The watch is down: read the database, keep nothing.
    Off,
}

/// Permission to keep a snapshot built from a read that began after it was issued. Any change
/// since then voids it.
pub struct Ticket {
    generation: u64,
}

#[derive(Default)]
pub struct ProviderCache {
    state: RwLock<State>,
}

#[derive(Default)]
struct State {
    /// Bumped by every change; a [`Ticket`] of an older generation is void.
    generation: u64,
    /// Whether other processes' changes are heard (see the module comment).
    watched: bool,
    snapshot: Option<Arc<Snapshot>>,
}

impl ProviderCache {
    pub fn lookup(&self, now: DateTime<Utc>) -> Lookup {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        match &state.snapshot {
            _ if !state.watched => Lookup::Off,
            Some(s) if s.fresh_until.is_none_or(|until| now < until) => Lookup::Fresh(s.clone()),
            _ => Lookup::Miss(Ticket {
                generation: state.generation,
            }),
        }
    }

    /// Keeps `snapshot` unless something changed since `ticket` was issued.
    pub fn offer(&self, ticket: Ticket, snapshot: Arc<Snapshot>) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if state.watched && state.generation == ticket.generation {
            state.snapshot = Some(snapshot);
        }
    }

    /// Drops the copy: a provider changed (call it once the change has committed).
    pub fn invalidate(&self) {
        self.change(|_| {});
    }

    fn set_watched(&self, watched: bool) {
        self.change(|state| state.watched = watched);
    }

    fn change(&self, also: impl FnOnce(&mut State)) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.generation += 1;
        state.snapshot = None;
        also(&mut state);
    }

    /// Hears other processes' changes until `stop` (see the module comment).
    pub async fn watch(self: Arc<Self>, db: Db, stop: CancellationToken) {
        match db {
            Db::Sqlite(pool) => self.poll_revision(&pool, &stop).await,
            Db::Postgres(pool) => loop {
                match self.listen(&pool, &stop).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot hear provider changes of other replicas; providers are read from the database until it can")
                    }
                }
                self.set_watched(false);
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(RETRY) => {}
                }
            },
        }
    }

    async fn poll_revision(&self, pool: &SqlitePool, stop: &CancellationToken) {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = None;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let read =
                sqlx::query_scalar::<_, i64>("SELECT revision FROM provider_revision WHERE id = 1")
                    .fetch_one(pool)
                    .await;
            match (read, seen) {
                (Ok(revision), None) => {
                    self.set_watched(true);
                    seen = Some(revision);
                }
                (Ok(revision), Some(before)) if revision != before => {
                    self.invalidate();
                    seen = Some(revision);
                }
                (Ok(_), Some(_)) => {}
                (Err(e), before) => {
                    if before.is_some() {
                        tracing::warn!(error = %e, "cannot read the provider revision; providers are read from the database until it can");
                        self.set_watched(false);
                    }
                    seen = None;
                }
            }
        }
    }

    /// Listens on [`CHANNEL`] until `stop` (`Ok`) or until the connection is lost or deaf.
    async fn listen(&self, pool: &PgPool, stop: &CancellationToken) -> Result<(), WatchError> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.eager_reconnect(false);
        listener.listen(CHANNEL).await?;
        // Whatever changed while nobody listened is unknown: start from the database.
        self.set_watched(true);
        // `try_recv` is not cancel-safe, so it runs in a task of its own; dropping the receiver
        // ends that task at its next notification, and `abort` ends it now.
        let (heard_tx, mut heard) = tokio::sync::mpsc::channel(64);
        let receiver = tokio::spawn(async move {
            loop {
                let next = listener.try_recv().await;
                let lost = !matches!(next, Ok(Some(_)));
                if heard_tx.send(next).await.is_err() || lost {
                    return;
                }
            }
        });
        let _abort_receiver = AbortOnDrop(receiver);
        let mut last_heard = tokio::time::Instant::now();
        let mut ping = tokio::time::interval(PING_EVERY);
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                next = heard.recv() => match next {
                    Some(Ok(Some(notification))) => {
                        last_heard = tokio::time::Instant::now();
                        if notification.payload() != PING {
                            self.invalidate();
                        }
                    }
                    Some(Ok(None)) | None => return Err(WatchError::Lost),
                    Some(Err(e)) => return Err(e.into()),
                },
                _ = ping.tick() => {
                    if last_heard.elapsed() > 2 * PING_EVERY {
                        return Err(WatchError::Deaf);
                    }
                    sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(CHANNEL)
                        .bind(PING)
                        .execute(pool)
                        .await?;
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum WatchError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("the listening connection was lost")]
    Lost,
    #[error("the listening connection heard nothing, not even its own ping")]
    Deaf,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use serde_json::Map;

    use super::*;
    use crate::providers::model::ProviderStatus;

    fn provider(id: &str, expires: Option<DateTime<Utc>>) -> Provider {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        Provider {
            id: id.to_owned(),
            name: id.to_owned(),
            provider_type: "sentinel".to_owned(),
            status: ProviderStatus::Active,
            connection: Map::new(),
            client_secret_masked: "abc****".to_owned(),
            is_default: false,
            last_health_check: None,
            last_health_status: None,
            created_by: "admin@example.com".to_owned(),
            created_at: at,
            updated_at: at,
            sync_incidents: false,
            client_secret_expires_at: expires,
            secret_expiry_warning: None,
        }
    }

    #[test]
    fn a_copy_is_fresh_until_the_next_moment_an_expiry_changes_what_it_shows() {
        let expires = Utc.with_ymd_and_hms(2026, 12, 31, 12, 0, 0).unwrap();
        let with = |now| next_change(&[provider("a", Some(expires)), provider("b", None)], now);
        // Far off: fresh until the warning starts.
        let start = expires - TimeDelta::days(SECRET_EXPIRY_WARNING_DAYS);
        assert_eq!(with(start - TimeDelta::days(100)), Some(start));
        // Counting down: fresh until the next day boundary.
        let day = start + TimeDelta::days(1);
        assert_eq!(with(start + TimeDelta::hours(1)), Some(day));
        // On a boundary: stale at once.
        assert_eq!(with(day), Some(day));
        // The last day: until it expires; expired, it never changes again.
        assert_eq!(with(expires - TimeDelta::hours(1)), Some(expires));
        assert_eq!(with(expires + TimeDelta::seconds(1)), None);
        assert_eq!(next_change(&[provider("b", None)], expires), None);
    }

    #[test]
    fn nothing_is_kept_unwatched_or_from_a_read_older_than_a_change() {
        let cache = ProviderCache::default();
        let now = Utc::now();
        let snapshot = || Arc::new(Snapshot::new(vec![provider("a", None)], now).unwrap());
        assert!(matches!(cache.lookup(now), Lookup::Off));
        cache.set_watched(true);
        let Lookup::Miss(ticket) = cache.lookup(now) else {
            panic!("a watched, empty cache misses");
        };
        // A change lands between the read and the offer: the read may predate it.
        cache.invalidate();
        cache.offer(ticket, snapshot());
        let Lookup::Miss(ticket) = cache.lookup(now) else {
            panic!("a copy older than a change was kept");
        };
        cache.offer(ticket, snapshot());
        let Lookup::Fresh(kept) = cache.lookup(now) else {
            panic!("a copy newer than every change was not kept");
        };
        assert_eq!(kept.providers().len(), 1);
        assert!(kept.detail_json("a").is_some());
        cache.set_watched(false);
        assert!(matches!(cache.lookup(now), Lookup::Off));
    }
}
