//! Configuration: flags and `SOCMATE_*` environment variables (clap reads both), validated once
//! at start-up. Secrets (master key, JWT secret, database URL) are read from the environment
//! only — never flags, which other users can see in the process list.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::sentinel::cloud::{EndpointError, EndpointOverrides, parse_endpoint};

/// Options every command that touches the data dir shares.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Directory for the SQLite database and generated key files.
    #[arg(long, env = "SOCMATE_DATA_DIR", default_value = "./socmate-data")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Address to listen on.
    #[arg(long, env = "SOCMATE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Entra ID authority host override.
    #[arg(long, env = "SOCMATE_AZURE_AUTHORITY_HOST")]
    pub azure_authority_host: Option<String>,
    /// Log Analytics query endpoint override (the host root; SoCMate appends /v1/...).
    #[arg(long, env = "SOCMATE_AZURE_LOG_ANALYTICS_ENDPOINT")]
    pub azure_log_analytics_endpoint: Option<String>,
    /// Microsoft Graph endpoint override (the host root; SoCMate appends /v1.0/...).
    #[arg(long, env = "SOCMATE_AZURE_GRAPH_ENDPOINT")]
    pub azure_graph_endpoint: Option<String>,
    /// Upper bound, in seconds, for a whole connection test.
    #[arg(long, env = "SOCMATE_CONNECTION_TEST_TIMEOUT", default_value_t = 5.0)]
    pub connection_test_timeout: f64,
    /// Connection tests per minute per caller (per replica).
    #[arg(long, env = "SOCMATE_CONNECTION_TEST_RATE", default_value_t = 10)]
    pub connection_test_rate: u32,
    /// Sign-in attempts per minute per client address and per email (per replica).
    #[arg(long, env = "SOCMATE_SIGN_IN_RATE", default_value_t = 10)]
    pub sign_in_rate: u32,
    /// State-changing API requests per minute per caller (per replica).
    #[arg(long, env = "SOCMATE_WRITE_RATE", default_value_t = 120)]
    pub write_rate: u32,
    /// Rows kept per query result; the rest are dropped and the result flagged `truncated`.
    #[arg(long, env = "SOCMATE_QUERY_ROW_CAP", default_value_t = 500_000)]
    pub query_row_cap: usize,
    /// Seconds between scheduled incident syncs (0 disables the scheduler).
    #[arg(long, env = "SOCMATE_SYNC_INTERVAL", default_value_t = 300)]
    pub sync_interval: u64,
    /// Seconds each sync re-reads before the watermark, for late updates.
    #[arg(long, env = "SOCMATE_SYNC_LOOKBACK", default_value_t = 600)]
    pub sync_lookback: u64,
    /// Days the first sync of a provider reads back.
    #[arg(long, env = "SOCMATE_SYNC_FIRST_WINDOW_DAYS", default_value_t = 7)]
    pub sync_first_window_days: u64,
    /// Log format on stderr.
    #[arg(long, env = "SOCMATE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Secrets from the environment, redacted in `Debug`.
#[derive(Debug, Default)]
pub struct Secrets {
    pub master_key: Option<SecretString>,
    /// A keyring: comma-separated keys, the active one first.
    pub master_keys: Option<SecretString>,
    pub jwt_secret: Option<SecretString>,
    pub database_url: Option<SecretString>,
}

impl Secrets {
    pub fn from_env() -> Self {
        let read = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(SecretString::from)
        };
        Self {
            master_key: read("SOCMATE_MASTER_KEY"),
            master_keys: read("SOCMATE_MASTER_KEYS"),
            jwt_secret: read("SOCMATE_JWT_SECRET"),
            database_url: read("SOCMATE_DATABASE_URL"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("SOCMATE_CONNECTION_TEST_TIMEOUT must be between 0.1 and 120 seconds")]
    TestTimeout,
}

/// Everything `serve` needs, validated.
#[derive(Debug)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub endpoints: EndpointOverrides,
    pub connection_test_budget: Duration,
    pub connection_test_rate: u32,
    pub sign_in_rate: u32,
    pub write_rate: u32,
    pub query_row_cap: usize,
    pub sync: crate::incidents::SyncSettings,
    pub secrets: Secrets,
}

impl Settings {
    pub fn new(args: &ServeArgs, secrets: Secrets) -> Result<Self, ConfigError> {
        let endpoint = |name, value: &Option<String>| {
            value
                .as_deref()
                .map(|v| parse_endpoint(name, v))
                .transpose()
        };
        let timeout = args.connection_test_timeout;
        if !(0.1..=120.0).contains(&timeout) {
            return Err(ConfigError::TestTimeout);
        }
        Ok(Self {
            data_dir: args.data.data_dir.clone(),
            listen: args.listen,
            endpoints: EndpointOverrides {
                authority_host: endpoint(
                    "SOCMATE_AZURE_AUTHORITY_HOST",
                    &args.azure_authority_host,
                )?,
                log_analytics: endpoint(
                    "SOCMATE_AZURE_LOG_ANALYTICS_ENDPOINT",
                    &args.azure_log_analytics_endpoint,
                )?,
                graph: endpoint("SOCMATE_AZURE_GRAPH_ENDPOINT", &args.azure_graph_endpoint)?,
            },
            connection_test_budget: Duration::from_secs_f64(timeout),
            connection_test_rate: args.connection_test_rate.max(1),
            sign_in_rate: args.sign_in_rate.max(1),
            write_rate: args.write_rate.max(1),
            query_row_cap: args.query_row_cap.max(1),
            sync: crate::incidents::SyncSettings {
                interval: Duration::from_secs(args.sync_interval),
                lookback: Duration::from_secs(args.sync_lookback),
                first_window: Duration::from_secs(
                    args.sync_first_window_days.saturating_mul(86_400),
                ),
            },
            secrets,
        })
    }
}
