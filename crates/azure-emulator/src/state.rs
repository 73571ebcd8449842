//! Mutable state shared by the HTTP handlers and the test handle: the configuration, issued
//! access tokens, injected faults and the request log. Every lock is short and never held across
//! an `.await`; a poisoned lock is recovered because the data stays consistent per operation.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::config::{App, EmulatorConfig, Tenant};
use crate::faults::{Endpoint, Fault, FaultKind};
use crate::util;

/// Most recent requests kept in the log (counts are kept for all requests).
const LOG_CAPACITY: usize = 10_000;
/// Expired tokens are remembered this long so they are reported as expired rather than unknown.
const EXPIRED_TOKEN_MEMORY: Duration = Duration::from_secs(3600);

/// One request as seen by the emulator (control API calls are not recorded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// Which Azure endpoint the path belongs to; `None` for unknown paths.
    pub endpoint: Option<Endpoint>,
    pub method: String,
    pub path: String,
    /// Raw query string (for the token endpoint a `client_secret` value is redacted).
    pub query: Option<String>,
    /// Token endpoint: the tenant id if the path names a known tenant (id or domain), else the
    /// path segment as sent. Log Analytics / Graph: the tenant of a known bearer token.
    pub tenant: Option<String>,
    /// Final HTTP status; 0 while the request is in flight or when it was hung by a fault.
    pub status: u16,
    /// Log Analytics only: the `Prefer` header (several headers joined with `,`).
    #[serde(default)]
    pub prefer: Option<String>,
    /// Log Analytics only: the request body (lossy UTF-8), `None` if empty. Never recorded for
    /// the token endpoint, whose body carries the client secret.
    #[serde(default)]
    pub body: Option<String>,
}

/// An access token the emulator issued.
#[derive(Debug, Clone)]
pub(crate) struct IssuedToken {
    pub tenant_id: String,
    pub client_id: String,
    /// Scope without `/.default`, e.g. `https://graph.microsoft.com`.
    pub audience: String,
    pub expires_at: Instant,
}

/// Result of looking up a request's bearer token.
pub(crate) enum Bearer {
    Missing,
    Unknown,
    Expired(IssuedToken),
    Valid(IssuedToken),
}

#[derive(Default)]
struct RequestLog {
    next_seq: u64,
    entries: VecDeque<(u64, RecordedRequest)>,
    counts: HashMap<Endpoint, usize>,
    /// Requests currently being handled per endpoint, and the highest such number seen.
    in_flight: HashMap<Endpoint, (usize, usize)>,
}

pub(crate) struct Shared {
    config: Mutex<EmulatorConfig>,
    tokens: Mutex<HashMap<String, IssuedToken>>,
    faults: Mutex<Vec<Fault>>,
    log: Mutex<RequestLog>,
    /// `http://host:port` of the listener, without trailing slash.
    pub base_url: String,
    /// Cancelled when the emulator shuts down; releases hung and delayed requests.
    pub shutdown: CancellationToken,
}

/// One request in flight (see [`Shared::enter`]); dropping it, also when the request future is
/// cancelled, ends it.
pub(crate) struct InFlight {
    shared: Arc<Shared>,
    endpoint: Endpoint,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut log = lock(&self.shared.log);
        if let Some((current, _)) = log.in_flight.get_mut(&self.endpoint) {
            *current = current.saturating_sub(1);
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The caller's app and tenant as resolved from a valid token, cloned out of the config.
pub(crate) struct Caller {
    pub tenant: Tenant,
    /// `None` if the app was removed from the config after the token was issued.
    pub app: Option<App>,
}

impl Shared {
    pub fn new(config: EmulatorConfig, base_url: String) -> Self {
        Self {
            config: Mutex::new(config),
            tokens: Mutex::new(HashMap::new()),
            faults: Mutex::new(Vec::new()),
            log: Mutex::new(RequestLog::default()),
            base_url,
            shutdown: CancellationToken::new(),
        }
    }

    // ---- configuration ----

    pub fn with_config<R>(&self, f: impl FnOnce(&EmulatorConfig) -> R) -> R {
        f(&lock(&self.config))
    }

    pub fn update_config<R>(&self, f: impl FnOnce(&mut EmulatorConfig) -> R) -> R {
        f(&mut lock(&self.config))
    }

    // ---- tokens ----

    pub fn issue_token(&self, tenant_id: &str, client_id: &str, audience: &str) -> String {
        let lifetime = self.with_config(|c| c.token_lifetime_secs);
        let mut raw = [0u8; 32];
        util::random_bytes(&mut raw);
        let token = format!("emu1.{}", util::hex(&raw));
        let now = Instant::now();
        let mut tokens = lock(&self.tokens);
        tokens.retain(|_, t| t.expires_at + EXPIRED_TOKEN_MEMORY > now);
        tokens.insert(
            token.clone(),
            IssuedToken {
                tenant_id: tenant_id.to_owned(),
                client_id: client_id.to_owned(),
                audience: audience.to_owned(),
                expires_at: now + Duration::from_secs(lifetime),
            },
        );
        token
    }

    /// Makes every issued token expired (they are then rejected as expired).
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for t in lock(&self.tokens).values_mut() {
            t.expires_at = t.expires_at.min(now);
        }
    }

    pub fn bearer(&self, headers: &HeaderMap) -> Bearer {
        let Some(token) = util::bearer_token(headers) else {
            return Bearer::Missing;
        };
        match lock(&self.tokens).get(&token) {
            None => Bearer::Unknown,
            Some(t) if t.expires_at <= Instant::now() => Bearer::Expired(t.clone()),
            Some(t) => Bearer::Valid(t.clone()),
        }
    }

    /// Tenant and app of a valid token, `None` if the tenant no longer exists.
    pub fn caller(&self, token: IssuedToken) -> Option<Caller> {
        self.with_config(|c| {
            let tenant = c.tenant(&token.tenant_id)?;
            let app = tenant.app(&token.client_id).cloned();
            Some(Caller {
                tenant: tenant.clone(),
                app,
            })
        })
    }

    /// Tenant id of the request's bearer token if the emulator issued it (even if expired).
    pub fn token_tenant(&self, headers: &HeaderMap) -> Option<String> {
        match self.bearer(headers) {
            Bearer::Valid(t) | Bearer::Expired(t) => Some(t.tenant_id),
            Bearer::Missing | Bearer::Unknown => None,
        }
    }

    // ---- faults ----

    pub fn inject(&self, fault: Fault) {
        lock(&self.faults).push(fault);
    }

    pub fn faults(&self) -> Vec<Fault> {
        lock(&self.faults).clone()
    }

    pub fn clear_faults(&self) {
        lock(&self.faults).clear();
    }

    /// Finds the first active fault matching the request, consumes one use of it and returns
    /// its kind. `tenant_raw` is the tenant as named by the request (token URL segment or token
    /// tenant id), `tenant_id` its resolved id if known.
    pub fn take_fault(
        &self,
        endpoint: Option<Endpoint>,
        tenant_raw: Option<&str>,
        tenant_id: Option<&str>,
    ) -> Option<FaultKind> {
        let config = lock(&self.config);
        let mut faults = lock(&self.faults);
        faults.retain(|f| f.times != Some(0));
        let idx = faults.iter().position(|f| {
            if f.endpoint.is_some() && f.endpoint != endpoint {
                return false;
            }
            match &f.tenant {
                None => true,
                Some(want) => {
                    let raw_match = tenant_raw.is_some_and(|r| r.eq_ignore_ascii_case(want));
                    let id_match = match (config.tenant(want), tenant_id) {
                        (Some(t), Some(id)) => t.id.eq_ignore_ascii_case(id),
                        _ => false,
                    };
                    raw_match || id_match
                }
            }
        })?;
        let kind = faults[idx].kind.clone();
        if let Some(n) = faults[idx].times.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                faults.remove(idx);
            }
        }
        Some(kind)
    }

    // ---- request log ----

    /// Records a request at arrival (status 0) and returns its sequence number.
    pub fn record_arrival(&self, req: RecordedRequest) -> u64 {
        let mut log = lock(&self.log);
        let seq = log.next_seq;
        log.next_seq += 1;
        if let Some(e) = req.endpoint {
            *log.counts.entry(e).or_default() += 1;
        }
        if log.entries.len() >= LOG_CAPACITY {
            log.entries.pop_front();
        }
        log.entries.push_back((seq, req));
        seq
    }

    pub fn record_status(&self, seq: u64, status: u16) {
        let mut log = lock(&self.log);
        if let Some((_, r)) = log.entries.iter_mut().rev().find(|(s, _)| *s == seq) {
            r.status = status;
        }
    }

    pub fn request_count(&self, endpoint: Endpoint) -> usize {
        lock(&self.log).counts.get(&endpoint).copied().unwrap_or(0)
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.log)
            .entries
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Empties the log and counts; the concurrency maxima restart from the requests in flight.
    pub fn clear_requests(&self) {
        let mut log = lock(&self.log);
        log.entries.clear();
        log.counts.clear();
        for (current, max) in log.in_flight.values_mut() {
            *max = *current;
        }
    }

    /// Marks a request to `endpoint` as in flight until the returned guard is dropped.
    pub fn enter(self: &Arc<Self>, endpoint: Endpoint) -> InFlight {
        let mut log = lock(&self.log);
        let (current, max) = log.in_flight.entry(endpoint).or_default();
        *current += 1;
        *max = (*max).max(*current);
        InFlight {
            shared: Arc::clone(self),
            endpoint,
        }
    }

    pub fn max_concurrent(&self, endpoint: Endpoint) -> usize {
        lock(&self.log)
            .in_flight
            .get(&endpoint)
            .map_or(0, |(_, max)| *max)
    }
}
