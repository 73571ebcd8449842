//! Configuration: flags and `SOCMATE_*` environment variables (clap reads both) over an optional
//! TOML file over built-in defaults, validated once at start-up. Secrets (master key, JWT secret, database URL) are read from the environment
//! only — never flags, which other users can see in the process list.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use crate::http::client_addr::{IpBlock, TrustedProxies};
use crate::sentinel::cloud::{EndpointError, EndpointOverrides, parse_endpoint};

const DEFAULT_DATA_DIR: &str = "./socmate-data";

/// Options every command that touches the data dir shares.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Directory for the SQLite database and generated key files [default: ./socmate-data].
    #[arg(long, env = "SOCMATE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML configuration file, layered under environment variables and flags.
    #[arg(long, env = "SOCMATE_CONFIG")]
    pub config: Option<PathBuf>,
}

impl DataArgs {
    /// The configuration file's settings (empty without `--config`).
    pub fn file(&self) -> Result<FileConfig, ConfigError> {
        self.config
            .as_deref()
            .map_or_else(|| Ok(FileConfig::default()), FileConfig::load)
    }

    /// The data dir: flag or environment, then the file, then the default.
    pub fn data_dir(&self) -> Result<PathBuf, ConfigError> {
        let file = self.file()?;
        Ok(self
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `serve`'s settings as flags and environment variables. Every field is optional here so that
/// a value missing on the command line and in the environment can come from the config file;
/// the defaults are applied in [`Settings::new`].
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "SOCMATE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Entra ID authority host override.
    #[arg(long, env = "SOCMATE_AZURE_AUTHORITY_HOST")]
    pub azure_authority_host: Option<String>,
    /// Log Analytics query endpoint override (the host root; SoCMate appends /v1/...).
    #[arg(long, env = "SOCMATE_AZURE_LOG_ANALYTICS_ENDPOINT")]
    pub azure_log_analytics_endpoint: Option<String>,
    /// Microsoft Graph endpoint override (the host root; SoCMate appends /v1.0/...).
    #[arg(long, env = "SOCMATE_AZURE_GRAPH_ENDPOINT")]
    pub azure_graph_endpoint: Option<String>,
    /// Upper bound, in seconds, for a whole connection test [default: 5].
    #[arg(long, env = "SOCMATE_CONNECTION_TEST_TIMEOUT")]
    pub connection_test_timeout: Option<f64>,
    /// Connection tests per minute per caller, per replica [default: 10].
    #[arg(long, env = "SOCMATE_CONNECTION_TEST_RATE")]
    pub connection_test_rate: Option<u32>,
    /// Sign-in attempts per minute per client address and per email, per replica [default: 10].
    #[arg(long, env = "SOCMATE_SIGN_IN_RATE")]
    pub sign_in_rate: Option<u32>,
    /// State-changing API requests per minute per caller, per replica [default: 120].
    #[arg(long, env = "SOCMATE_WRITE_RATE")]
    pub write_rate: Option<u32>,
    /// Rows kept per query result; the rest are dropped and the result flagged `truncated`
    /// [default: 500000].
    #[arg(long, env = "SOCMATE_QUERY_ROW_CAP")]
    pub query_row_cap: Option<usize>,
    /// Seconds between scheduled incident syncs; 0 disables the scheduler [default: 300].
    #[arg(long, env = "SOCMATE_SYNC_INTERVAL")]
    pub sync_interval: Option<u64>,
    /// Seconds each sync re-reads before the watermark, for late updates [default: 600].
    #[arg(long, env = "SOCMATE_SYNC_LOOKBACK")]
    pub sync_lookback: Option<u64>,
    /// Days the first sync of a provider reads back [default: 7].
    #[arg(long, env = "SOCMATE_SYNC_FIRST_WINDOW_DAYS")]
    pub sync_first_window_days: Option<u64>,
    /// Log format on stderr [default: text].
    #[arg(long, env = "SOCMATE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Reverse proxies whose X-Forwarded-For is believed: addresses or CIDR blocks, comma
    /// separated [default: none].
    #[arg(long, env = "SOCMATE_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
}

/// The configuration file (`--config` / `SOCMATE_CONFIG`): the settings of [`ServeArgs`] under
/// their snake_case names. Unknown keys are errors (a typo must not silently keep a default), and
/// so are secrets, which belong in the environment only.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub azure_authority_host: Option<String>,
    pub azure_log_analytics_endpoint: Option<String>,
    pub azure_graph_endpoint: Option<String>,
    pub connection_test_timeout: Option<f64>,
    pub connection_test_rate: Option<u32>,
    pub sign_in_rate: Option<u32>,
    pub write_rate: Option<u32>,
    pub query_row_cap: Option<usize>,
    pub sync_interval: Option<u64>,
    pub sync_lookback: Option<u64>,
    pub sync_first_window_days: Option<u64>,
    pub log_format: Option<LogFormat>,
    pub trusted_proxies: Option<String>,
}

/// Secret settings, refused in the file with a pointer to their environment variable.
const SECRET_KEYS: &[(&str, &str)] = &[
    ("master_key", "SOCMATE_MASTER_KEY"),
    ("master_keys", "SOCMATE_MASTER_KEYS"),
    ("jwt_secret", "SOCMATE_JWT_SECRET"),
    ("database_url", "SOCMATE_DATABASE_URL"),
];

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text).map_err(|reason| ConfigError::File {
            path: path.display().to_string(),
            reason,
        })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| e.message().to_owned())?;
        if let Some((key, var)) = SECRET_KEYS.iter().find(|(key, _)| table.contains_key(*key)) {
            return Err(format!(
                "`{key}` is a secret and is read from the environment only: set {var} instead"
            ));
        }
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| e.message().to_owned())
    }
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
    #[error("configuration file {path}: {reason}")]
    File { path: String, reason: String },
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("SOCMATE_CONNECTION_TEST_TIMEOUT must be between 0.1 and 120 seconds")]
    TestTimeout,
    #[error("set SOCMATE_MASTER_KEYS or SOCMATE_MASTER_KEY, not both")]
    BothKeyVariables,
    #[error(
        "SOCMATE_TRUSTED_PROXIES must list IP addresses or CIDR blocks separated by commas; \
         '{0}' is neither"
    )]
    TrustedProxy(String),
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
    pub log_format: LogFormat,
    pub trusted_proxies: TrustedProxies,
    pub sync: crate::incidents::SyncSettings,
    pub secrets: Secrets,
}

impl Settings {
    /// Layers flags and environment (already merged by clap) over the file over the defaults.
    pub fn new(args: &ServeArgs, secrets: Secrets) -> Result<Self, ConfigError> {
        let file = args.data.file()?;
        Self::layered(args, &file, secrets)
    }

    pub fn layered(
        args: &ServeArgs,
        file: &FileConfig,
        secrets: Secrets,
    ) -> Result<Self, ConfigError> {
        let endpoint =
            |name, value: Option<&String>| value.map(|v| parse_endpoint(name, v)).transpose();
        let timeout = args
            .connection_test_timeout
            .or(file.connection_test_timeout)
            .unwrap_or(5.0);
        if !(0.1..=120.0).contains(&timeout) {
            return Err(ConfigError::TestTimeout);
        }
        if secrets.master_key.is_some() && secrets.master_keys.is_some() {
            return Err(ConfigError::BothKeyVariables);
        }
        let trusted_proxies = args
            .trusted_proxies
            .as_ref()
            .or(file.trusted_proxies.as_ref())
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|entry| !entry.is_empty())
                    .map(|entry| {
                        IpBlock::parse(entry)
                            .ok_or_else(|| ConfigError::TrustedProxy(entry.to_owned()))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let sync_interval = args.sync_interval.or(file.sync_interval).unwrap_or(300);
        let sync_lookback = args.sync_lookback.or(file.sync_lookback).unwrap_or(600);
        let first_window_days = args
            .sync_first_window_days
            .or(file.sync_first_window_days)
            .unwrap_or(7);
        Ok(Self {
            data_dir: args
                .data
                .data_dir
                .clone()
                .or_else(|| file.data_dir.clone())
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            endpoints: EndpointOverrides {
                authority_host: endpoint(
                    "SOCMATE_AZURE_AUTHORITY_HOST",
                    args.azure_authority_host
                        .as_ref()
                        .or(file.azure_authority_host.as_ref()),
                )?,
                log_analytics: endpoint(
                    "SOCMATE_AZURE_LOG_ANALYTICS_ENDPOINT",
                    args.azure_log_analytics_endpoint
                        .as_ref()
                        .or(file.azure_log_analytics_endpoint.as_ref()),
                )?,
                graph: endpoint(
                    "SOCMATE_AZURE_GRAPH_ENDPOINT",
                    args.azure_graph_endpoint
                        .as_ref()
                        .or(file.azure_graph_endpoint.as_ref()),
                )?,
            },
            connection_test_budget: Duration::from_secs_f64(timeout),
            connection_test_rate: args
                .connection_test_rate
                .or(file.connection_test_rate)
                .unwrap_or(10)
                .max(1),
            sign_in_rate: args.sign_in_rate.or(file.sign_in_rate).unwrap_or(10).max(1),
            write_rate: args.write_rate.or(file.write_rate).unwrap_or(120).max(1),
            query_row_cap: args
                .query_row_cap
                .or(file.query_row_cap)
                .unwrap_or(500_000)
                .max(1),
            log_format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            trusted_proxies: TrustedProxies(trusted_proxies),
            sync: crate::incidents::SyncSettings {
                interval: Duration::from_secs(sync_interval),
                lookback: Duration::from_secs(sync_lookback),
                first_window: Duration::from_secs(first_window_days.saturating_mul(86_400)),
            },
            secrets,
        })
    }
}

/// `socmate config check`'s report: each effective setting, where it came from, and which
/// secrets are set (never their values).
pub fn describe(
    settings: &Settings,
    args: &ServeArgs,
    file: &FileConfig,
    source_of: impl Fn(&str) -> Option<clap::parser::ValueSource>,
) -> Vec<String> {
    use clap::parser::ValueSource;
    let source = |id: &str, from_args: bool, from_file: bool| match (from_args, source_of(id)) {
        (true, Some(ValueSource::CommandLine)) => "flag".to_owned(),
        (true, _) => format!("env {}", env_name(id)),
        (false, _) if from_file => "file".to_owned(),
        (false, _) => "default".to_owned(),
    };
    let url = |u: &Option<url::Url>| {
        u.as_ref()
            .map_or_else(|| "(the provider's cloud)".to_owned(), url::Url::to_string)
    };
    let rows: Vec<(&str, String, bool, bool)> = vec![
        (
            "listen",
            settings.listen.to_string(),
            args.listen.is_some(),
            file.listen.is_some(),
        ),
        (
            "data_dir",
            settings.data_dir.display().to_string(),
            args.data.data_dir.is_some(),
            file.data_dir.is_some(),
        ),
        (
            "azure_authority_host",
            url(&settings.endpoints.authority_host),
            args.azure_authority_host.is_some(),
            file.azure_authority_host.is_some(),
        ),
        (
            "azure_log_analytics_endpoint",
            url(&settings.endpoints.log_analytics),
            args.azure_log_analytics_endpoint.is_some(),
            file.azure_log_analytics_endpoint.is_some(),
        ),
        (
            "azure_graph_endpoint",
            url(&settings.endpoints.graph),
            args.azure_graph_endpoint.is_some(),
            file.azure_graph_endpoint.is_some(),
        ),
        (
            "connection_test_timeout",
            settings.connection_test_budget.as_secs_f64().to_string(),
            args.connection_test_timeout.is_some(),
            file.connection_test_timeout.is_some(),
        ),
        (
            "connection_test_rate",
            settings.connection_test_rate.to_string(),
            args.connection_test_rate.is_some(),
            file.connection_test_rate.is_some(),
        ),
        (
            "sign_in_rate",
            settings.sign_in_rate.to_string(),
            args.sign_in_rate.is_some(),
            file.sign_in_rate.is_some(),
        ),
        (
            "write_rate",
            settings.write_rate.to_string(),
            args.write_rate.is_some(),
            file.write_rate.is_some(),
        ),
        (
            "query_row_cap",
            settings.query_row_cap.to_string(),
            args.query_row_cap.is_some(),
            file.query_row_cap.is_some(),
        ),
        (
            "sync_interval",
            settings.sync.interval.as_secs().to_string(),
            args.sync_interval.is_some(),
            file.sync_interval.is_some(),
        ),
        (
            "sync_lookback",
            settings.sync.lookback.as_secs().to_string(),
            args.sync_lookback.is_some(),
            file.sync_lookback.is_some(),
        ),
        (
            "sync_first_window_days",
            (settings.sync.first_window.as_secs() / 86_400).to_string(),
            args.sync_first_window_days.is_some(),
            file.sync_first_window_days.is_some(),
        ),
        (
            "log_format",
            format!("{:?}", settings.log_format).to_lowercase(),
            args.log_format.is_some(),
            file.log_format.is_some(),
        ),
        (
            "trusted_proxies",
            args.trusted_proxies
                .clone()
                .or_else(|| file.trusted_proxies.clone())
                .unwrap_or_else(|| "(none: X-Forwarded-For is ignored)".to_owned()),
            args.trusted_proxies.is_some(),
            file.trusted_proxies.is_some(),
        ),
    ];
    let mut lines: Vec<String> = rows
        .into_iter()
        .map(|(id, value, from_args, from_file)| {
            format!("{id} = {value}    # {}", source(id, from_args, from_file))
        })
        .collect();
    let set = |s: &Option<SecretString>| if s.is_some() { "set" } else { "not set" };
    let secrets = &settings.secrets;
    lines.push(format!(
        "SOCMATE_MASTER_KEYS: {}; SOCMATE_MASTER_KEY: {} (both unset: the key file in data_dir)",
        set(&secrets.master_keys),
        set(&secrets.master_key)
    ));
    lines.push(format!(
        "SOCMATE_JWT_SECRET: {} (unset: the key file in data_dir)",
        set(&secrets.jwt_secret)
    ));
    lines.push(format!(
        "SOCMATE_DATABASE_URL: {} ({})",
        set(&secrets.database_url),
        if secrets.database_url.is_some() {
            "PostgreSQL"
        } else {
            "SQLite in data_dir"
        }
    ));
    lines
}

fn env_name(id: &str) -> String {
    format!("SOCMATE_{}", id.to_uppercase())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn args(flags: &[&str]) -> ServeArgs {
        let argv = std::iter::once("serve").chain(flags.iter().copied());
        Serve::parse_from(argv).args
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_the_defaults() {
        let file = FileConfig::parse(
            "listen = \"127.0.0.1:9000\"\nwrite_rate = 7\nsync_interval = 60\nlog_format = \"json\"",
        )
        .unwrap();
        let settings =
            Settings::layered(&args(&["--write-rate", "9"]), &file, Secrets::default()).unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(settings.write_rate, 9);
        assert_eq!(settings.sync.interval, Duration::from_secs(60));
        assert_eq!(settings.log_format, LogFormat::Json);
        assert_eq!(settings.sign_in_rate, 10, "default");
        assert_eq!(settings.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn unknown_keys_wrong_types_and_secrets_are_refused_by_name() {
        let unknown = FileConfig::parse("sync_intervall = 5").unwrap_err();
        assert!(unknown.contains("sync_intervall"), "{unknown}");
        let wrong_type = FileConfig::parse("write_rate = \"lots\"").unwrap_err();
        assert!(wrong_type.contains("invalid type"), "{wrong_type}");
        for (key, var) in SECRET_KEYS {
            let err = FileConfig::parse(&format!("{key} = \"hunter2-secret\"")).unwrap_err();
            assert!(err.contains(var) && !err.contains("hunter2"), "{err}");
        }
        assert!(FileConfig::parse("not toml at all [").is_err());
    }

    #[test]
    fn file_values_are_validated_like_flags() {
        let file = FileConfig::parse("connection_test_timeout = 500.0").unwrap();
        assert!(matches!(
            Settings::layered(&args(&[]), &file, Secrets::default()),
            Err(ConfigError::TestTimeout)
        ));
        let file =
            FileConfig::parse("azure_graph_endpoint = \"http://graph.example.com\"").unwrap();
        assert!(matches!(
            Settings::layered(&args(&[]), &file, Secrets::default()),
            Err(ConfigError::Endpoint(_))
        ));
    }
}
