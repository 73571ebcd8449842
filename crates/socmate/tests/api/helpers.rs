//! Test harness: a real `socmate` router on a random port over a real SQLite file (or a fresh
//! PostgreSQL database when `SOCMATE_TEST_DATABASE_URL` is set), talking to the Azure emulator
//! over real HTTP.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use azure_emulator::{EmulatorConfig, RunningEmulator};
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use socmate::app::Application;
use socmate::auth::{JwtKeys, Role};
use socmate::config::{Secrets, Settings};
use socmate::sentinel::cloud::parse_endpoint;
use socmate::siem::ProviderKind;
use tokio_util::sync::CancellationToken;

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const CLIENT: &str = "b1a3c5d7-0000-4000-8000-00000000a001";
pub const WORKSPACE: &str = "c0ffee00-0000-4000-8000-00000000beef";
/// Every secret in the suite contains this, so leaks can be searched for.
pub const CANARY: &str = "CANARY-5f0c2d9e-7b1a-4c55-9a0e-1d2b3c4d5e6f";
pub const JWT_SECRET: &str = "test-jwt-secret-that-is-long-enough-0123456789";

pub fn secret() -> String {
    format!("{CANARY}-x")
}

/// A second valid secret of the same app, for rotation tests.
pub fn rotated_secret() -> String {
    format!("{CANARY}-rotated")
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub admin: String,
    pub analyst_token: String,
    pub emulator: RunningEmulator,
    pub data_dir: tempfile::TempDir,
    pub master_key: String,
    pub db_url: Option<String>,
    pub sync: socmate::incidents::IncidentSync,
    shutdown: CancellationToken,
    server: Mutex<Option<tokio::task::JoinHandle<std::io::Result<()>>>>,
    /// Every response body the suite saw, for the leak checks.
    pub seen: Arc<Mutex<Vec<String>>>,
}

pub struct Options {
    pub test_budget: Duration,
    pub emulator: EmulatorConfig,
    /// Sends token requests somewhere other than the emulator.
    pub authority: Option<String>,
    pub row_cap: usize,
    /// Scheduled incident syncs (zero: tests run syncs themselves).
    pub sync_interval: Duration,
    pub test_rate_per_minute: u32,
    pub sign_in_rate_per_minute: u32,
    pub write_rate_per_minute: u32,
    /// `SOCMATE_TRUSTED_PROXIES` entries.
    pub trusted_proxies: Vec<&'static str>,
    /// Provider types registered beside the built-in ones.
    pub provider_types: Vec<Arc<dyn ProviderKind>>,
    /// A store to open instead of a fresh one (its data dir and, on PostgreSQL, its URL).
    pub store: Option<(tempfile::TempDir, Option<String>)>,
    /// Timeouts, the connection cap and the shutdown window.
    pub connections: socmate::http::server::ConnectionLimits,
    /// Background health checks (zero: off).
    pub health_interval: Duration,
    /// `SOCMATE_NOTIFY_WEBHOOK_URL` and `SOCMATE_NOTIFY_WEBHOOK_SECRET`.
    pub webhook: Option<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        let mut emulator = EmulatorConfig::single_tenant(TENANT, CLIENT, secret(), WORKSPACE);
        emulator.tenants[0]
            .domains
            .push("contoso.onmicrosoft.com".into());
        emulator.tenants[0].apps[0]
            .secrets
            .push(azure_emulator::AppSecret::new(rotated_secret()));
        Self {
            test_budget: Duration::from_secs(3),
            emulator,
            authority: None,
            row_cap: 500_000,
            sync_interval: Duration::ZERO,
            test_rate_per_minute: 1_000,
            sign_in_rate_per_minute: 1_000,
            write_rate_per_minute: 100_000,
            trusted_proxies: Vec::new(),
            provider_types: Vec::new(),
            store: None,
            connections: Settings::defaults().connections,
            health_interval: Duration::ZERO,
            webhook: None,
        }
    }
}

pub fn master_key_b64(byte: u8) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

/// An empty data dir and, when the suite runs on PostgreSQL, a fresh database.
pub async fn fresh_store() -> (tempfile::TempDir, Option<String>) {
    let data_dir = tempfile::tempdir().expect("temp dir");
    (data_dir, crate::pg::fresh_database().await)
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        socmate::telemetry::init(socmate::config::LogFormat::Text);
    }
    let emulator = RunningEmulator::start(options.emulator)
        .await
        .expect("emulator starts");
    let (data_dir, db_url) = match options.store {
        Some(store) => store,
        None => fresh_store().await,
    };
    let master_key = master_key_b64(42);
    let mut settings = settings(
        &emulator,
        data_dir.path(),
        &master_key,
        db_url.as_deref(),
        options.test_budget,
    );
    settings.query_row_cap = options.row_cap;
    settings.sync.interval = options.sync_interval;
    settings.connection_test_rate = options.test_rate_per_minute;
    settings.sign_in_rate = options.sign_in_rate_per_minute;
    settings.write_rate = options.write_rate_per_minute;
    settings.connections = options.connections;
    settings.health.interval = options.health_interval;
    if let Some((url, secret)) = options.webhook {
        settings.secrets.notify_webhook_url = Some(SecretString::from(url));
        settings.secrets.notify_webhook_secret = Some(SecretString::from(secret));
    }
    settings.trusted_proxies = socmate::http::client_addr::TrustedProxies(
        options
            .trusted_proxies
            .iter()
            .map(|p| socmate::http::client_addr::IpBlock::parse(p).expect("proxy"))
            .collect(),
    );
    if let Some(authority) = &options.authority {
        settings.provider_types.sentinel.authority_host =
            Some(parse_endpoint("authority", authority).expect("url"));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut registry =
        socmate::provider_types::registry(&settings.provider_types).expect("provider types");
    for kind in options.provider_types {
        registry.register(kind);
    }
    let app = Application::build_with_registry(settings, listener, registry)
        .await
        .expect("app builds");
    let addr = app.local_addr().expect("addr");
    let sync = app.incident_sync();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    let keys = JwtKeys::from_secret(JWT_SECRET.as_bytes()).expect("jwt keys");
    TestApp {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        admin: keys
            .issue("admin@example.com", Role::Admin, Duration::from_secs(600))
            .expect("token"),
        analyst_token: keys
            .issue(
                "analyst@example.com",
                Role::Analyst,
                Duration::from_secs(600),
            )
            .expect("token"),
        emulator,
        data_dir,
        master_key,
        db_url,
        sync,
        shutdown,
        server: Mutex::new(Some(server)),
        seen: Arc::default(),
    }
}

pub fn settings(
    emulator: &RunningEmulator,
    data_dir: &std::path::Path,
    master_key: &str,
    db_url: Option<&str>,
    test_budget: Duration,
) -> Settings {
    let url = parse_endpoint("the emulator", &emulator.url()).expect("url");
    let mut settings = Settings::defaults();
    settings.data_dir = data_dir.to_path_buf();
    settings.listen = "127.0.0.1:0".parse().expect("addr");
    let sentinel = &mut settings.provider_types.sentinel;
    sentinel.authority_host = Some(url.clone());
    sentinel.log_analytics_endpoint = Some(url.clone());
    sentinel.graph_endpoint = Some(url);
    settings.connection_test_budget = test_budget;
    // Generous, so that only the rate-limit tests meet the limits.
    settings.connection_test_rate = 1_000;
    settings.sign_in_rate = 1_000;
    settings.write_rate = 100_000;
    // Tests drive sync runs themselves unless they ask for the scheduler.
    settings.sync.interval = Duration::ZERO;
    settings.secrets = Secrets {
        master_key: Some(SecretString::from(master_key.to_owned())),
        master_keys: None,
        jwt_secret: Some(SecretString::from(JWT_SECRET.to_owned())),
        database_url: db_url.map(|u| SecretString::from(u.to_owned())),
        ..Secrets::default()
    };
    // Background health checks would add Entra and Log Analytics calls to every test; the
    // health tests turn them on.
    settings.health.interval = Duration::ZERO;
    settings
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl TestApp {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        self.seen
            .lock()
            .expect("lock")
            .push(format!("{headers:?}\n{text}"));
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn analyst(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call(method, path, Some(&self.analyst_token), body)
            .await
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call(method, path, Some(&self.admin), body).await
    }

    /// A bearer token for another user of this app (signed like the built-in ones).
    pub fn token_for(&self, email: &str, role: Role) -> String {
        JwtKeys::from_secret(JWT_SECRET.as_bytes())
            .expect("jwt keys")
            .issue(email, role, Duration::from_secs(600))
            .expect("token")
    }

    /// Creates a provider and returns its JSON.
    pub async fn create_provider(&self, name: &str) -> Value {
        self.create_provider_from(provider_body(name)).await
    }

    /// Creates a provider from a whole body, asserting that it worked; returns its JSON.
    pub async fn create_provider_from(&self, body: Value) -> Value {
        let reply = self
            .admin(Method::POST, "/api/admin/siem-providers", Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body
    }

    /// Creates a provider and returns its id.
    pub async fn create_provider_id(&self, name: &str) -> String {
        self.create_provider(name).await["id"]
            .as_str()
            .expect("a provider id")
            .to_owned()
    }

    /// Makes a provider the default, asserting that it worked.
    pub async fn set_default(&self, id: &str) {
        let reply = self
            .admin(
                Method::PUT,
                &format!("/api/admin/siem-providers/{id}/default"),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }

    pub async fn list(&self) -> Value {
        let reply = self
            .admin(Method::GET, "/api/admin/siem-providers", None)
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        reply.body
    }

    /// Adds a console user through the real `socmate user add` (password on stdin).
    pub fn add_user(&self, email: &str, role: &str, password: &str) {
        let out = self.user_command(&["add", "--email", email, "--role", role], password);
        crate::process::assert_succeeded(&out);
    }

    /// Runs `socmate user <args>` on this app's store, with `stdin` as its input.
    pub fn user_command(&self, args: &[&str], stdin: &str) -> std::process::Output {
        let mut command = self.socmate();
        command.arg("user").args(args);
        crate::process::with_stdin(&mut command, stdin)
    }

    /// The `socmate` binary pointed at this app's store (its data dir, or its PostgreSQL
    /// database), for the CLI's own commands.
    pub fn socmate(&self) -> std::process::Command {
        let mut command = crate::process::command(self.data_dir.path(), None, &[]);
        command
            .env("SOCMATE_MASTER_KEY", &self.master_key)
            .env_remove("SOCMATE_DATABASE_URL");
        if let Some(url) = &self.db_url {
            command.env("SOCMATE_DATABASE_URL", url);
        }
        command
    }

    /// Signs in through `POST /api/auth/login`.
    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/api/auth/login", self.base))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("login sent")
    }

    /// The bytes the store holds: SQLite's pages (WAL included), or PostgreSQL's database size.
    pub async fn store_bytes(&self) -> i64 {
        use sqlx::Connection as _;
        match &self.db_url {
            Some(url) => {
                let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
                sqlx::query_scalar("SELECT pg_database_size(current_database())")
                    .fetch_one(&mut conn)
                    .await
                    .expect("database size")
            }
            None => {
                let file = self.data_dir.path().join("socmate.db");
                let mut conn =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
                        .await
                        .expect("connect");
                sqlx::query_scalar(
                    "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                )
                .fetch_one(&mut conn)
                .await
                .expect("page count")
            }
        }
    }

    /// Shuts the server down and waits until it has stopped.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        let server = self.server.lock().expect("lock").take();
        if let Some(server) = server {
            let stopped = tokio::time::timeout(Duration::from_secs(10), server).await;
            assert!(stopped.is_ok(), "the server did not stop within 10 s");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Body builders with one field changed or removed: `provider_body("x").with("cloud", json!("…"))`.
pub trait With {
    fn with(self, field: &str, value: Value) -> Self;
    fn without(self, field: &str) -> Self;
}

impl With for Value {
    fn with(mut self, field: &str, value: Value) -> Self {
        self[field] = value;
        self
    }

    fn without(mut self, field: &str) -> Self {
        if let Some(object) = self.as_object_mut() {
            object.shift_remove(field);
        }
        self
    }
}

/// Polls `check` until it gives a value, failing the test after `limit` with `what` and the last
/// value seen.
pub async fn wait_until<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) => assert!(
                tokio::time::Instant::now() < deadline,
                "{what} did not happen within {limit:?}; last seen: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One check of a connection test result, by name.
pub fn check<'a>(result: &'a Value, name: &str) -> &'a Value {
    result["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {name} check in {result}"))
}

pub fn connection_body() -> Value {
    json!({
        "provider_type": "sentinel",
        "workspace_id": WORKSPACE,
        "tenant_id": TENANT,
        "client_id": CLIENT,
        "client_secret": secret(),
    })
}

pub fn provider_body(name: &str) -> Value {
    let mut body = connection_body();
    body["name"] = json!(name);
    body
}
