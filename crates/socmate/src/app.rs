//! Wiring: open the store, prove the master key, build the router, serve until shutdown.
//!
//! [`Application::build`] does every check that can refuse a start *before* a port is bound,
//! so a misconfigured server never accepts a request.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::accounts::Accounts;
use crate::auth::{AuthState, AuthUser, JwtKeyError, JwtKeys, authenticate, require_admin};
use crate::config::{ConfigError, Settings};
use crate::crypto::{
    KeyCheckError, KeySource, ensure_keys_in_use_are_loaded, load_verified_keyring,
};
use crate::http::ApiError;
use crate::http::client_addr::TrustedProxies;
use crate::incidents::IncidentSync;
use crate::openapi::{self, ApiRouters};
use crate::providers::Providers;
use crate::queries::Queries;
use crate::rate_limit::RateLimiter;
use crate::siem::Registry;
use crate::store::{DatabaseLocation, Db, StoreError};

/// Request bodies above this size are refused with 413.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open the database: {0}")]
    Database(#[from] StoreError),
    #[error("refusing to start: {0}")]
    MasterKey(#[from] KeyCheckError),
    #[error(transparent)]
    JwtKey(#[from] JwtKeyError),
    #[error(transparent)]
    Webhook(#[from] crate::notify::WebhookConfigError),
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// A server that passed every start-up check and is bound to its port.
pub struct Application {
    listener: TcpListener,
    router: Router,
    /// Answers connections past the cap: health probes, and a fast 503 for the rest.
    overflow: Router,
    connections: crate::http::server::ConnectionLimits,
    audit_retention: Option<std::time::Duration>,
    db: Db,
    sync: IncidentSync,
    health: crate::health::HealthWatch,
    webhook: Option<crate::notify::Webhook>,
    health_retention: std::time::Duration,
    /// Stops background work (the sync scheduler and runs) when the server shuts down.
    background: CancellationToken,
}

/// Where to serve: bound last, after every start-up check.
enum Listen {
    Address(std::net::SocketAddr),
    Bound(TcpListener),
}

impl Listen {
    async fn bind(self) -> Result<TcpListener, StartupError> {
        match self {
            Self::Bound(listener) => Ok(listener),
            Self::Address(addr) => {
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartupError::Bind {
                        addr: addr.to_string(),
                        source,
                    })
            }
        }
    }
}

#[derive(Clone)]
struct Health {
    db: Db,
}

impl Application {
    /// Checks everything, then binds `settings.listen`: a server that cannot start (a wrong
    /// master key, an unreachable database) never opens its port, not even briefly.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let registry = crate::provider_types::registry(&settings.provider_types)?;
        let address = settings.listen;
        Self::assemble(settings, Listen::Address(address), registry).await
    }

    /// Like [`build`](Self::build) on a listener the caller bound (tests use port 0). The
    /// listener is only served once every check has passed.
    pub async fn build_with_listener(
        settings: Settings,
        listener: TcpListener,
    ) -> Result<Self, StartupError> {
        let registry = crate::provider_types::registry(&settings.provider_types)?;
        Self::build_with_registry(settings, listener, registry).await
    }

    /// Like [`build_with_listener`](Self::build_with_listener) with the provider types given
    /// (tests add a second type through the public seam).
    pub async fn build_with_registry(
        settings: Settings,
        listener: TcpListener,
        registry: Registry,
    ) -> Result<Self, StartupError> {
        Self::assemble(settings, Listen::Bound(listener), registry).await
    }

    async fn assemble(
        settings: Settings,
        listen: Listen,
        registry: Registry,
    ) -> Result<Self, StartupError> {
        create_data_dir(&settings.data_dir)?;
        let db = match &settings.secrets.database_url {
            Some(url) => Db::connect(DatabaseLocation::Url(url)).await?,
            None => Db::connect(DatabaseLocation::SqliteIn(&settings.data_dir)).await?,
        };
        db.migrate().await?;
        let (keyring, source) =
            load_verified_keyring(&db, &settings.secrets, &settings.data_dir).await?;
        ensure_keys_in_use_are_loaded(&db, &keyring).await?;
        let key_ids = keyring.key_ids().join(",");
        let active = keyring.active_key_id();
        match &source {
            KeySource::Generated(path) => tracing::warn!(
                key_id = active,
                path = %path.display(),
                "GENERATED A NEW MASTER KEY. Back up this file: without it the stored client \
                 secrets cannot be decrypted. In production pass SOCMATE_MASTER_KEY explicitly."
            ),
            KeySource::File(path) => {
                tracing::info!(active_key_id = active, key_ids, path = %path.display(), "master keys loaded from file");
                if crate::private_files::readable_by_others(path) {
                    tracing::warn!(
                        path = %path.display(),
                        "the master key file is readable by other users of this machine; \
                         restrict it with: chmod 600 {}",
                        path.display()
                    );
                }
            }
            KeySource::Environment => {
                tracing::info!(
                    active_key_id = active,
                    key_ids,
                    "master keys loaded from the environment"
                )
            }
        }
        announce_first_run(&db, &settings).await?;
        let jwt = Arc::new(JwtKeys::load(
            settings.secrets.jwt_secret.as_ref(),
            &settings.data_dir,
        )?);
        let providers = Providers {
            db: db.clone(),
            keyring: Arc::new(keyring),
            registry: Arc::new(registry),
            test_budget: settings.connection_test_budget,
            changed: Arc::default(),
            test_limiter: Arc::new(RateLimiter::per_minute(settings.connection_test_rate)),
            cache: Arc::default(),
        };
        let queries = Queries {
            providers: providers.clone(),
            row_cap: settings.query_row_cap,
        };
        let background = CancellationToken::new();
        let instance_id = instance_id(&settings.data_dir)?;
        let sync = IncidentSync::new(
            providers.clone(),
            instance_id,
            settings.sync.clone(),
            background.clone(),
        );
        let health = crate::health::HealthWatch::new(
            providers.clone(),
            settings.health.clone(),
            background.clone(),
        );
        let webhook = crate::notify::Webhook::from_settings(
            settings.secrets.notify_webhook_url.as_ref(),
            settings.secrets.notify_webhook_secret.as_ref(),
        )?;
        let accounts = Accounts {
            db: db.clone(),
            sign_in_limits: Arc::new(crate::accounts::SignInLimits::new(settings.sign_in_rate)),
        };
        let write_limiter = Arc::new(RateLimiter::per_minute(settings.write_rate));
        let trusted_proxies = Arc::new(settings.trusted_proxies.clone());
        // Installed before serving, so the first scrape already has the series.
        let _ = crate::metrics::handle();
        let router = router(Services {
            providers,
            queries,
            sync: sync.clone(),
            health: health.clone(),
            accounts,
            auth: AuthState {
                keys: jwt,
                db: db.clone(),
            },
            write_limiter,
            trusted_proxies,
        });
        let listener = listen.bind().await?;
        Ok(Self {
            listener,
            router,
            overflow: overflow_router(db.clone()),
            connections: settings.connections.clone(),
            audit_retention: settings.audit_retention,
            db,
            sync,
            health,
            webhook,
            health_retention: settings.health.retention,
            background,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// The incident sync engine (tests drive runs through it).
    pub fn incident_sync(&self) -> IncidentSync {
        self.sync.clone()
    }

    /// Serves until `shutdown` is cancelled, then lets in-flight requests finish.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        tracing::info!(addr = %self.listener.local_addr()?, database = self.db.backend_name(), "socmate listening");
        let scheduler = tokio::spawn(self.sync.clone().run_scheduler());
        let housekeeping = tokio::spawn(prune(
            self.db.clone(),
            self.audit_retention,
            self.health_retention,
            self.background.clone(),
        ));
        let health = tokio::spawn(self.health.clone().run());
        let provider_watch = tokio::spawn(
            self.sync
                .providers()
                .cache
                .clone()
                .watch(self.db.clone(), self.background.clone()),
        );
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let notifications = tokio::spawn(crate::notify::deliver(
            self.db.clone(),
            self.webhook,
            http,
            self.background.clone(),
        ));
        let background = self.background.clone();
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            stopping.cancelled().await;
            background.cancel();
        });
        crate::http::server::serve(
            self.listener,
            self.router,
            self.overflow,
            self.connections,
            shutdown,
        )
        .await;
        self.background.cancel();
        let _ = scheduler.await;
        let _ = housekeeping.await;
        let _ = health.await;
        let _ = provider_watch.await;
        let _ = notifications.await;
        // A sync run still holding a connection is abandoned, not awaited: its lease expires.
        if tokio::time::timeout(DB_CLOSE_GRACE, self.db.close())
            .await
            .is_err()
        {
            tracing::warn!("database connections still busy at shutdown; closing anyway");
        }
        Ok(())
    }
}

/// Prunes audit entries, health checks and notifications past their retention, at start and
/// hourly, until `stop`.
async fn prune(
    db: Db,
    audit_retention: Option<std::time::Duration>,
    health_retention: std::time::Duration,
    stop: CancellationToken,
) {
    let mut hourly = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = hourly.tick() => {}
        }
        let due = [
            ("audit_log", "at", audit_retention),
            ("health_checks", "checked_at", Some(health_retention)),
            // Sent or given up, an event is kept as long as the checks it came from.
            ("notifications", "created_at", Some(health_retention)),
        ];
        for (table, column, retention) in due {
            let Some(retention) = retention else { continue };
            match crate::store::delete_older_than(&db, table, column, retention).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(table, pruned, "pruned rows past their retention"),
                Err(e) => tracing::warn!(table, error = %e, "cannot prune; retrying in an hour"),
            }
        }
    }
}

/// How long shutdown waits for pooled database connections to be returned.
const DB_CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// With no console user yet, nobody can pass the sign-in page: the log says how to add the first
/// admin, with this server's own data dir (or database) in the command.
async fn announce_first_run(db: &Db, settings: &Settings) -> Result<(), StartupError> {
    if !crate::accounts::store::list_users(db).await?.is_empty() {
        return Ok(());
    }
    let store = if settings.secrets.database_url.is_some() {
        "SOCMATE_DATABASE_URL=… ".to_owned()
    } else {
        String::new()
    };
    tracing::warn!(
        "NO CONSOLE USER YET. Create the first admin (the password is read from stdin, at least \
         {} characters): echo 'a long passphrase here' | {store}socmate user add --data-dir {} \
         --email admin@example.com --role admin",
        crate::accounts::MIN_PASSWORD_LEN,
        settings.data_dir.display(),
    );
    Ok(())
}

/// This instance's stable identity (kept in the data dir): a restarted process reclaims its own
/// sync leases at once instead of waiting for them to expire.
fn instance_id(data_dir: &std::path::Path) -> Result<String, StartupError> {
    let path = data_dir.join("instance.id");
    let io_error = |source| StartupError::DataDir {
        path: path.display().to_string(),
        source,
    };
    crate::private_files::restrict(&path).map_err(io_error)?;
    match std::fs::read_to_string(&path) {
        Ok(id) if crate::id::ResourceId::parse(id.trim()).is_some() => Ok(id.trim().to_owned()),
        Ok(_) | Err(_) => {
            let id = crate::id::ResourceId::generate().to_string();
            crate::private_files::write(&path, id.as_bytes()).map_err(io_error)?;
            Ok(id)
        }
    }
}

fn create_data_dir(path: &std::path::Path) -> Result<(), StartupError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(path)
        .map_err(|source| StartupError::DataDir {
            path: path.display().to_string(),
            source,
        })
}

/// Everything the router hands to its handlers.
pub struct Services {
    pub providers: Providers,
    pub queries: Queries,
    pub sync: IncidentSync,
    pub health: crate::health::HealthWatch,
    pub accounts: Accounts,
    pub auth: AuthState,
    pub write_limiter: Arc<RateLimiter>,
    pub trusted_proxies: Arc<TrustedProxies>,
}

pub fn router(services: Services) -> Router {
    let Services {
        providers,
        queries,
        sync,
        health,
        accounts,
        auth,
        write_limiter,
        trusted_proxies,
    } = services;
    let db = auth.db.clone();
    let ApiRouters {
        providers: provider_routes,
        provider_sync,
        provider_health,
        provider_directory,
        audit_log,
        siem,
        investigations,
        incidents,
        sign_in,
        session,
        document,
    } = openapi::api(&providers.registry);
    // Rendered once; each request shares the bytes.
    let spec = axum::body::Bytes::from(serde_json::to_vec(&document).unwrap_or_default());
    let admin = Router::new()
        .nest(
            mount(openapi::PROVIDERS, "/api/admin"),
            provider_routes
                .with_state(providers.clone())
                .merge(provider_sync.with_state(sync.clone()))
                .merge(provider_health.with_state(health)),
        )
        .nest(
            mount(openapi::AUDIT_LOG, "/api/admin"),
            audit_log.with_state(db.clone()),
        )
        // Its own fallback, so that unknown admin paths are behind the admin guard too.
        .fallback(api_not_found)
        .layer(middleware::from_fn_with_state(db.clone(), require_admin));
    let authenticated = Router::new()
        .nest("/admin", admin)
        .nest(
            mount(openapi::SIEM, "/api"),
            siem.with_state(queries.clone())
                .merge(provider_directory.with_state(providers.clone())),
        )
        .nest(
            mount(openapi::INVESTIGATIONS, "/api"),
            investigations.with_state(queries),
        )
        .nest(
            mount(openapi::INCIDENTS, "/api"),
            incidents.with_state(sync),
        )
        .nest(
            mount(openapi::AUTH, "/api"),
            session.with_state(accounts.clone()),
        )
        .fallback(api_not_found)
        .layer(middleware::from_fn_with_state(write_limiter, limit_writes))
        .layer(middleware::from_fn_with_state(auth, authenticate));
    let api = Router::new()
        .nest(mount(openapi::AUTH, "/api"), sign_in.with_state(accounts))
        .route(
            "/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], spec) }),
        )
        .merge(authenticated)
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz).with_state(Health { db: db.clone() }))
        .route("/metrics", get(crate::metrics::render).with_state(db))
        .nest("/api", api)
        .merge(crate::console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .route_layer(middleware::from_fn(crate::metrics::track_http))
        .layer(middleware::from_fn(crate::telemetry::scope_request_id))
        .layer(middleware::from_fn_with_state(
            trusted_proxies,
            crate::http::client_addr::resolve,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            let request_id = request
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
        }))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(tower::util::MapRequestLayer::new(
            crate::telemetry::keep_plain_request_id,
        ))
}

/// What a connection past the cap is served: the health probes as usual, a 503 for the rest.
fn overflow_router(db: Db) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz).with_state(Health { db }))
        .fallback(|| async {
            let mut response = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_busy",
                "the server is at its connection limit; retry shortly",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        })
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(health): State<Health>) -> Response {
    match health.db.ping().await {
        // The keys were proven against the database before the port was served.
        Ok(()) => {
            axum::Json(serde_json::json!({"status": "ready", "database": "ok", "keys": "ok"}))
                .into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"status": "unavailable", "database": "unreachable"})),
            )
                .into_response()
        }
    }
}

/// Caps state-changing requests per caller (reads are not limited: they change nothing and the
/// database absorbs them). Runs after `authenticate`, so the key is the verified identity.
async fn limit_writes(
    State(limiter): State<Arc<RateLimiter>>,
    user: AuthUser,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Result<Response, ApiError> {
    if !request.method().is_safe() {
        limiter.check(&user.email).map_err(|wait| {
            ApiError::rate_limited(
                "too many changes from this user; wait before retrying",
                wait,
            )
        })?;
    }
    Ok(next.run(request).await)
}

/// `path` relative to the router nested at `parent` (the mounts are defined once, in `openapi`).
fn mount<'a>(path: &'a str, parent: &str) -> &'a str {
    path.strip_prefix(parent).unwrap_or(path)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such resource")
}

async fn api_not_found() -> ApiError {
    ApiError::not_found("no such API endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not support the method used",
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    // The panic payload may hold request data: log that a panic happened, never its text.
    tracing::error!("a request handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "an internal error occurred; the server log has the details",
    )
    .into_response()
}
