//! Mutable state shared by the HTTP handlers and the test handle: the configuration, issued
//! access tokens, injected faults and the request log. Every lock is short and never held across
//! an `.await`; a poisoned lock is recovered because the data stays consistent per operation.
//!
//! The configuration is kept as an immutable [`Snapshot`] behind an `Arc`: a request takes the
//! current snapshot (a reference count, however large the tenants are) and reads it without a
//! lock; [`Shared::update_config`] changes it in place when no request holds it, else changes a
//! copy. A snapshot also caches indexes derived from its data (see [`crate::graph::GraphIndex`]),
//! which are therefore dropped together with the data they describe.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::config::{App, EmulatorConfig, Tenant};
use crate::faults::{Endpoint, Fault, FaultKind};
use crate::graph::GraphIndex;
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
    /// The caller's correlation id: `client-request-id` (Entra ID, Graph) or
    /// `x-ms-client-request-id` (Log Analytics).
    #[serde(default)]
    pub client_request_id: Option<String>,
}

/// An access token the emulator issued.
#[derive(Debug, Clone)]
pub(crate) struct IssuedToken {
    pub tenant_id: String,
    pub client_id: String,
    /// Scope without `/.default`, e.g. `https://graph.microsoft.com`.
    pub audience: String,
    /// The app's application roles when the token was issued: Entra ID writes them into the
    /// token's `roles` claim, so consent granted later is not in a token issued before
    /// (Microsoft Q&A 141122; entra-docs `access-token-claims-reference.md`, `roles`).
    pub roles: Vec<String>,
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

/// The configuration as of one moment, with indexes over its data built on first use.
pub(crate) struct Snapshot {
    pub config: EmulatorConfig,
    /// One index per tenant of `config.tenants` (same order), allocated on first use.
    graph: OnceLock<Vec<GraphIndex>>,
}

impl Snapshot {
    fn new(config: EmulatorConfig) -> Self {
        Self {
            config,
            graph: OnceLock::new(),
        }
    }

    /// The Graph index of `config.tenants[tenant]`.
    pub fn graph_index(&self, tenant: usize) -> &GraphIndex {
        let all = self.graph.get_or_init(|| {
            (0..self.config.tenants.len())
                .map(|_| GraphIndex::default())
                .collect()
        });
        &all[tenant]
    }
}

impl Clone for Snapshot {
    /// Copies the configuration; the indexes are rebuilt on demand.
    fn clone(&self) -> Self {
        Self::new(self.config.clone())
    }
}

pub(crate) struct Shared {
    config: RwLock<Arc<Snapshot>>,
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

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// The caller's app and tenant as resolved from a valid token, in the configuration snapshot
/// taken at that moment (later config changes do not affect a request already authorized).
pub(crate) struct Caller {
    snapshot: Arc<Snapshot>,
    tenant: usize,
    /// `None` if the app was removed from the config after the token was issued.
    app: Option<usize>,
    /// The roles in the caller's token (as granted when it was issued).
    pub roles: Vec<String>,
}

impl Caller {
    pub fn tenant(&self) -> &Tenant {
        &self.snapshot.config.tenants[self.tenant]
    }

    pub fn app(&self) -> Option<&App> {
        self.app.map(|i| &self.tenant().apps[i])
    }

    /// Indexes over the caller's tenant's incidents and alerts.
    pub fn graph_index(&self) -> &GraphIndex {
        self.snapshot.graph_index(self.tenant)
    }
}

impl Shared {
    pub fn new(config: EmulatorConfig, base_url: String) -> Self {
        Self {
            config: RwLock::new(Arc::new(Snapshot::new(config))),
            tokens: Mutex::new(HashMap::new()),
            faults: Mutex::new(Vec::new()),
            log: Mutex::new(RequestLog::default()),
            base_url,
            shutdown: CancellationToken::new(),
        }
    }

    // ---- configuration ----

    /// The current configuration; cheap (no copy of the data).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&read(&self.config))
    }

    pub fn with_config<R>(&self, f: impl FnOnce(&EmulatorConfig) -> R) -> R {
        f(&self.snapshot().config)
    }

    /// Runs `f` on the configuration under the write lock. Requests still holding the previous
    /// snapshot keep it; if there are none the data is changed in place.
    pub fn update_config<R>(&self, f: impl FnOnce(&mut EmulatorConfig) -> R) -> R {
        let mut current = write(&self.config);
        let snapshot = Arc::make_mut(&mut current);
        // Drop the indexes before `f` runs, so they are rebuilt even if `f` panics half-way.
        snapshot.graph = OnceLock::new();
        f(&mut snapshot.config)
    }

    // ---- tokens ----

    /// Issues an access token shaped like Entra ID's (a JWT whose payload carries `aud`, `iss`,
    /// `tid`, `appid`, `roles`, `iat`, `nbf`, `exp`; entra-docs `access-token-claims-reference.md`),
    /// signed with nothing a client could verify — clients must not verify app tokens meant for
    /// another resource anyway, only read claims such as `tid`.
    pub fn issue_token(
        &self,
        tenant_id: &str,
        client_id: &str,
        audience: &str,
        roles: Vec<String>,
    ) -> String {
        use base64::Engine as _;
        let lifetime = self.with_config(|c| c.token_lifetime_secs);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let issued = chrono::Utc::now().timestamp();
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "kid": "emulator"});
        let claims = serde_json::json!({
            "aud": audience,
            "iss": format!("https://sts.windows.net/{tenant_id}/"),
            "iat": issued,
            "nbf": issued,
            "exp": issued.saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX)),
            "appid": client_id,
            "idtyp": "app",
            "roles": roles,
            "tid": tenant_id,
            "ver": "1.0",
        });
        let mut signature = [0u8; 32];
        util::random_bytes(&mut signature);
        let token = format!(
            "{}.{}.{}",
            b64.encode(header.to_string()),
            b64.encode(claims.to_string()),
            b64.encode(signature)
        );
        let now = Instant::now();
        let mut tokens = lock(&self.tokens);
        tokens.retain(|_, t| t.expires_at + EXPIRED_TOKEN_MEMORY > now);
        tokens.insert(
            token.clone(),
            IssuedToken {
                tenant_id: tenant_id.to_owned(),
                client_id: client_id.to_owned(),
                audience: audience.to_owned(),
                roles,
                expires_at: now + Duration::from_secs(lifetime),
            },
        );
        token
    }

    /// The audiences of the tokens issued and not yet forgotten, sorted, without repeats.
    pub fn token_audiences(&self) -> Vec<String> {
        let mut audiences: Vec<String> = lock(&self.tokens)
            .values()
            .map(|t| t.audience.clone())
            .collect();
        audiences.sort();
        audiences.dedup();
        audiences
    }

    /// Forgets every issued token, as a signing-key rollover or a revocation would: they are then
    /// unknown (Log Analytics: 403 `InvalidTokenError`; Graph: 401), though not expired.
    pub fn revoke_tokens(&self) {
        lock(&self.tokens).clear();
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
        let snapshot = self.snapshot();
        let c = &snapshot.config;
        let tenant = c.tenant(&token.tenant_id)?;
        let tenant_idx = c.tenants.iter().position(|t| std::ptr::eq(t, tenant))?;
        let app_idx = tenant
            .app(&token.client_id)
            .and_then(|app| tenant.apps.iter().position(|a| std::ptr::eq(a, app)));
        Some(Caller {
            tenant: tenant_idx,
            app: app_idx,
            snapshot,
            roles: token.roles,
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
        let snapshot = self.snapshot();
        let config = &snapshot.config;
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
