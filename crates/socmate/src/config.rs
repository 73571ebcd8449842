//! Configuration. Every setting is declared once, as a clap argument with its flag, its
//! `SOCMATE_*` variable and its default; [`parse_command_line`] layers the optional TOML file
//! (`--config` / `SOCMATE_CONFIG`) between the environment and the defaults, so the precedence is
//! flag > environment > file > default, and `socmate config check` reports each value's source
//! from the same parse. The file uses the arguments' ids as keys (`listen`, `sync_interval`, …);
//! a provider type's settings sit in a table of its own. Unknown keys are errors (a
//! typo must not silently keep a default), and so are secrets (master key, JWT secret, database
//! URL), which are read from the environment only — never flags, which other users can see in
//! the process list, nor a file that may be committed.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory};
use secrecy::SecretString;

use crate::http::client_addr::{IpBlock, TrustedProxies};
use crate::provider_types::ProviderTypeArgs;

/// Options every command that touches the data dir shares.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Directory for the SQLite database and generated key files.
    #[arg(long, env = "SOCMATE_DATA_DIR", default_value = "./socmate-data")]
    pub data_dir: PathBuf,
    /// TOML configuration file, layered under environment variables and flags.
    #[arg(long, env = "SOCMATE_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `serve`'s settings: one declaration each.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Address to listen on.
    #[arg(long, env = "SOCMATE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Upper bound, in seconds, for a whole connection test (0.1 to 120).
    #[arg(long, env = "SOCMATE_CONNECTION_TEST_TIMEOUT", default_value = "5", value_parser = test_timeout)]
    pub connection_test_timeout: Duration,
    /// Connection tests per minute per caller, per replica.
    #[arg(long, env = "SOCMATE_CONNECTION_TEST_RATE", default_value = "10", value_parser = clap::value_parser!(u32).range(1..))]
    pub connection_test_rate: u32,
    /// Sign-in attempts per minute per client address, per replica; failures for one account
    /// are limited per address and, more slowly, account-wide (see docs/security.md).
    #[arg(long, env = "SOCMATE_SIGN_IN_RATE", default_value = "10", value_parser = clap::value_parser!(u32).range(1..))]
    pub sign_in_rate: u32,
    /// State-changing API requests per minute per caller, per replica.
    #[arg(long, env = "SOCMATE_WRITE_RATE", default_value = "120", value_parser = clap::value_parser!(u32).range(1..))]
    pub write_rate: u32,
    /// Rows kept per query result; the rest are dropped and the result flagged `truncated`.
    #[arg(long, env = "SOCMATE_QUERY_ROW_CAP", default_value = "500000", value_parser = clap::value_parser!(u64).range(1..))]
    pub query_row_cap: u64,
    /// Seconds between scheduled incident syncs; 0 disables the scheduler.
    #[arg(long, env = "SOCMATE_SYNC_INTERVAL", default_value = "300")]
    pub sync_interval: u64,
    /// Seconds each sync re-reads before the watermark, for late updates.
    #[arg(long, env = "SOCMATE_SYNC_LOOKBACK", default_value = "600")]
    pub sync_lookback: u64,
    /// Days the first sync of a provider reads back.
    #[arg(long, env = "SOCMATE_SYNC_FIRST_WINDOW_DAYS", default_value = "7", value_parser = clap::value_parser!(u64).range(..=36_500))]
    pub sync_first_window_days: u64,
    /// Seconds a client has to send a request's headers; also how long a kept-alive connection
    /// may sit idle.
    #[arg(long, env = "SOCMATE_HTTP_HEADER_TIMEOUT", default_value = "10", value_parser = seconds_between_1_and_3600)]
    pub http_header_timeout: Duration,
    /// Seconds a request body may stall between two of its parts.
    #[arg(long, env = "SOCMATE_HTTP_BODY_TIMEOUT", default_value = "30", value_parser = seconds_between_1_and_3600)]
    pub http_body_timeout: Duration,
    /// Connections served at once; beyond it health probes still answer and other requests get
    /// a fast 503. Keep it well below the process's open-file limit.
    #[arg(long, env = "SOCMATE_MAX_CONNECTIONS", default_value = "512", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Seconds shutdown waits for requests in flight before closing their connections.
    #[arg(long, env = "SOCMATE_SHUTDOWN_GRACE", default_value = "10", value_parser = seconds_between_1_and_3600)]
    pub shutdown_grace: Duration,
    /// Days the audit log keeps its entries; older ones are pruned hourly. 0 keeps them forever.
    #[arg(long, env = "SOCMATE_AUDIT_RETENTION_DAYS", default_value = "365", value_parser = clap::value_parser!(u64).range(..=36_500))]
    pub audit_retention_days: u64,
    /// Seconds between background health checks of each provider (jittered); 0 turns them off.
    #[arg(long, env = "SOCMATE_HEALTH_INTERVAL", default_value = "900", value_parser = clap::value_parser!(u64).range(..=86_400))]
    pub health_interval: u64,
    /// Days each provider's health checks are kept.
    #[arg(long, env = "SOCMATE_HEALTH_RETENTION_DAYS", default_value = "30", value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub health_retention_days: u64,
    /// Log format on stderr.
    #[arg(long, env = "SOCMATE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Reverse proxies whose X-Forwarded-For is believed: addresses or CIDR blocks, comma
    /// separated [default: none, X-Forwarded-For is ignored].
    #[arg(long, env = "SOCMATE_TRUSTED_PROXIES", value_parser = trusted_proxies)]
    pub trusted_proxies: Option<TrustedProxies>,
    #[command(flatten)]
    pub provider_types: ProviderTypeArgs,
}

fn test_timeout(value: &str) -> Result<Duration, String> {
    match value.trim().parse::<f64>() {
        Ok(secs) if (0.1..=120.0).contains(&secs) => Ok(Duration::from_secs_f64(secs)),
        _ => Err("must be a number of seconds between 0.1 and 120".to_owned()),
    }
}

fn seconds_between_1_and_3600(value: &str) -> Result<Duration, String> {
    match value.trim().parse::<u64>() {
        Ok(secs @ 1..=3600) => Ok(Duration::from_secs(secs)),
        _ => Err("must be a whole number of seconds between 1 and 3600".to_owned()),
    }
}

fn trusted_proxies(list: &str) -> Result<TrustedProxies, String> {
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            IpBlock::parse(entry).ok_or_else(|| {
                format!(
                    "must list IP addresses or CIDR blocks separated by commas; '{entry}' is neither"
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(TrustedProxies)
}

/// Secret settings, refused in the file with a pointer to their environment variable.
const SECRET_KEYS: &[(&str, &str)] = &[
    ("master_key", "SOCMATE_MASTER_KEY"),
    ("master_keys", "SOCMATE_MASTER_KEYS"),
    ("jwt_secret", "SOCMATE_JWT_SECRET"),
    ("database_url", "SOCMATE_DATABASE_URL"),
    ("notify_webhook_url", "SOCMATE_NOTIFY_WEBHOOK_URL"),
    ("notify_webhook_secret", "SOCMATE_NOTIFY_WEBHOOK_SECRET"),
];

/// Secrets from the environment, redacted in `Debug`.
#[derive(Debug, Default)]
pub struct Secrets {
    pub master_key: Option<SecretString>,
    /// A keyring: comma-separated keys, the active one first.
    pub master_keys: Option<SecretString>,
    pub jwt_secret: Option<SecretString>,
    pub database_url: Option<SecretString>,
    /// Where notifications are POSTed (it may carry the receiver's token).
    pub notify_webhook_url: Option<SecretString>,
    /// `whsec_<base64>`: the key notifications are signed with.
    pub notify_webhook_secret: Option<SecretString>,
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
            notify_webhook_url: read("SOCMATE_NOTIFY_WEBHOOK_URL"),
            notify_webhook_secret: read("SOCMATE_NOTIFY_WEBHOOK_SECRET"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("set SOCMATE_MASTER_KEYS or SOCMATE_MASTER_KEY, not both")]
    BothKeyVariables,
}

/// Everything `serve` needs, validated.
#[derive(Debug)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub connection_test_budget: Duration,
    pub connection_test_rate: u32,
    pub sign_in_rate: u32,
    pub write_rate: u32,
    pub query_row_cap: usize,
    pub log_format: LogFormat,
    pub trusted_proxies: TrustedProxies,
    pub connections: crate::http::server::ConnectionLimits,
    /// How long audit entries are kept; `None` keeps them forever.
    pub audit_retention: Option<Duration>,
    pub health: crate::health::HealthSettings,
    pub sync: crate::incidents::SyncSettings,
    pub provider_types: ProviderTypeArgs,
    pub secrets: Secrets,
}

impl Settings {
    pub fn new(args: ServeArgs, secrets: Secrets) -> Result<Self, ConfigError> {
        if secrets.master_key.is_some() && secrets.master_keys.is_some() {
            return Err(ConfigError::BothKeyVariables);
        }
        Ok(Self {
            data_dir: args.data.data_dir,
            listen: args.listen,
            connection_test_budget: args.connection_test_timeout,
            connection_test_rate: args.connection_test_rate,
            sign_in_rate: args.sign_in_rate,
            write_rate: args.write_rate,
            query_row_cap: usize::try_from(args.query_row_cap).unwrap_or(usize::MAX),
            log_format: args.log_format,
            trusted_proxies: args.trusted_proxies.unwrap_or_default(),
            connections: crate::http::server::ConnectionLimits {
                header_timeout: args.http_header_timeout,
                body_timeout: args.http_body_timeout,
                max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
                shutdown_grace: args.shutdown_grace,
            },
            audit_retention: (args.audit_retention_days > 0)
                .then(|| Duration::from_secs(args.audit_retention_days.saturating_mul(86_400))),
            health: crate::health::HealthSettings {
                interval: Duration::from_secs(args.health_interval),
                retention: Duration::from_secs(args.health_retention_days.saturating_mul(86_400)),
                sync_interval: Duration::from_secs(args.sync_interval),
            },
            sync: crate::incidents::SyncSettings {
                interval: Duration::from_secs(args.sync_interval),
                lookback: Duration::from_secs(args.sync_lookback),
                first_window: Duration::from_secs(
                    args.sync_first_window_days.saturating_mul(86_400),
                ),
            },
            provider_types: args.provider_types,
            secrets,
        })
    }

    /// Every setting at its default, whatever the environment says, and no secrets (tests and
    /// tools start from here).
    pub fn defaults() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            args: ServeArgs,
        }
        let command = Defaults::command().mut_args(|arg| arg.env(None));
        let args = command
            .try_get_matches_from(["socmate"])
            .and_then(|m| <Defaults as clap::FromArgMatches>::from_arg_matches(&m));
        match args.map(|defaults| Self::new(defaults.args, Secrets::default())) {
            Ok(Ok(settings)) => settings,
            // The defaults are literals above, checked by a unit test; no secrets, no conflict.
            Ok(Err(e)) => unreachable!("the built-in defaults are valid: {e}"),
            Err(e) => unreachable!("the built-in defaults parse: {e}"),
        }
    }
}

/// A parsed command line, and which of its values came from the configuration file.
pub struct Parsed {
    pub matches: ArgMatches,
    pub from_file: BTreeSet<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error(transparent)]
    Clap(#[from] clap::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Parses `argv` as the command line of `C`, with the configuration file layered under flags and
/// environment: each file entry that no flag or variable set becomes that flag. File keys are
/// checked against `serve`'s settings (the file is shared by every subcommand; each takes what
/// it has), so `socmate user add --config socmate.toml` works with the server's file.
pub fn parse_command_line<C: CommandFactory>(argv: Vec<OsString>) -> Result<Parsed, ParseError> {
    let command = C::command();
    let matches = command.clone().try_get_matches_from(&argv)?;
    let (leaf, leaf_matches) = leaf(&command, &matches);
    let Some(path) = leaf_matches
        .try_get_one::<PathBuf>("config")
        .ok()
        .flatten()
        .cloned()
    else {
        return Ok(Parsed {
            matches,
            from_file: BTreeSet::new(),
        });
    };
    let serve = command
        .find_subcommand("serve")
        .cloned()
        .unwrap_or_else(|| command.clone());
    let entries = read_file(&path, &serve)?;
    let mut injected = Vec::new();
    let mut from_file = BTreeSet::new();
    for (id, value) in entries {
        let Some(arg) = leaf.get_arguments().find(|a| a.get_id() == id.as_str()) else {
            continue;
        };
        let set_above = matches!(
            leaf_matches.value_source(&id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if let (false, Some(long)) = (set_above, arg.get_long()) {
            injected.push(OsString::from(format!("--{long}={value}")));
            from_file.insert(id);
        }
    }
    if injected.is_empty() {
        return Ok(Parsed { matches, from_file });
    }
    let matches = command.try_get_matches_from(argv.into_iter().chain(injected))?;
    Ok(Parsed { matches, from_file })
}

/// The deepest subcommand named on the command line, and its matches.
fn leaf<'a>(
    command: &'a clap::Command,
    matches: &'a ArgMatches,
) -> (&'a clap::Command, &'a ArgMatches) {
    let (mut command, mut matches) = (command, matches);
    while let Some((name, sub)) = matches.subcommand() {
        match command.find_subcommand(name) {
            Some(found) => (command, matches) = (found, sub),
            None => break,
        }
    }
    (command, matches)
}

/// The file's entries as `(argument id, value)`, each key known to `serve` and each value valid
/// for its argument.
fn read_file(path: &Path, serve: &clap::Command) -> Result<Vec<(String, String)>, ConfigError> {
    let failure = |reason: String| ConfigError::File {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| failure(e.to_string()))?;
    entries(&text, serve).map_err(failure)
}

pub(crate) fn entries(text: &str, serve: &clap::Command) -> Result<Vec<(String, String)>, String> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| e.message().to_owned())?;
    let mut flat = Vec::new();
    for (key, value) in table {
        match value {
            toml::Value::Table(section) => {
                for (inner, value) in section {
                    flat.push((format!("{key}.{inner}"), value));
                }
            }
            value => flat.push((key, value)),
        }
    }
    let known: Vec<&clap::Arg> = serve
        .get_arguments()
        .filter(|a| a.get_long().is_some() && a.get_id() != "config")
        .collect();
    let mut out = Vec::new();
    for (key, value) in flat {
        if let Some((_, var)) = SECRET_KEYS.iter().find(|(k, _)| *k == key) {
            return Err(format!(
                "`{key}` is a secret and is read from the environment only: set {var} instead"
            ));
        }
        if let Some((_, now)) = crate::provider_types::MOVED_KEYS
            .iter()
            .find(|(k, _)| *k == key)
        {
            return Err(format!("`{key}` has moved: set {now}"));
        }
        let Some(arg) = known.iter().find(|a| a.get_id() == key.as_str()) else {
            let names: Vec<&str> = known.iter().map(|a| a.get_id().as_str()).collect();
            return Err(format!(
                "unknown key `{key}`; the keys are {}",
                names.join(", ")
            ));
        };
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => return Err(format!("`{key}` must be a string, a number or a boolean")),
        };
        // The argument's own parser, as the flag would be checked.
        let long = arg.get_long().unwrap_or_default();
        clap::Command::new("socmate")
            .arg((*arg).clone().env(None))
            .try_get_matches_from(["socmate".to_owned(), format!("--{long}={text}")])
            .map_err(|e| format!("`{key}`: {}", clap_message(&e)))?;
        out.push((key, text));
    }
    Ok(out)
}

/// A clap error's first line, without its `error: ` prefix.
fn clap_message(error: &clap::Error) -> String {
    let text = error.to_string();
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}

/// `socmate config check`'s report: each setting of `command` with its effective value and
/// where it came from, then which secrets are set (never their values).
pub fn describe(command: &clap::Command, parsed: &Parsed, secrets: &Secrets) -> Vec<String> {
    let (leaf, matches) = leaf(command, &parsed.matches);
    let mut lines: Vec<String> = leaf
        .get_arguments()
        .filter(|a| a.get_long().is_some() && a.get_id() != "config")
        .map(|arg| {
            let id = arg.get_id().as_str();
            let value = matches
                .get_raw(id)
                .map(|values| {
                    values
                        .map(|v| v.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_else(|| "(unset)".to_owned());
            let source = if parsed.from_file.contains(id) {
                "file".to_owned()
            } else {
                match matches.value_source(id) {
                    Some(ValueSource::CommandLine) => "flag".to_owned(),
                    Some(ValueSource::EnvVariable) => format!(
                        "env {}",
                        arg.get_env()
                            .map(|e| e.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    ),
                    _ => "default".to_owned(),
                }
            };
            format!("{id} = {value}    # {source}")
        })
        .collect();
    let set = |s: &Option<SecretString>| if s.is_some() { "set" } else { "not set" };
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(clap::Subcommand)]
    enum Command {
        Serve(ServeArgs),
    }

    /// `serve` as the file layering sees it.
    pub(crate) fn serve() -> clap::Command {
        Cli::command()
            .find_subcommand("serve")
            .cloned()
            .unwrap_or_else(|| unreachable!())
    }

    #[test]
    fn the_defaults_parse() {
        let settings = Settings::defaults();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.sync.interval, Duration::from_secs(300));
        assert_eq!(settings.sync.first_window, Duration::from_secs(7 * 86_400));
        assert_eq!(settings.connection_test_budget, Duration::from_secs(5));
        assert_eq!(settings.query_row_cap, 500_000);
    }

    #[test]
    fn file_keys_are_argument_ids() {
        let got = entries("listen = \"127.0.0.1:9000\"\nwrite_rate = 7\n", &serve()).unwrap();
        assert_eq!(
            got,
            [
                ("listen".to_owned(), "127.0.0.1:9000".to_owned()),
                ("write_rate".to_owned(), "7".to_owned()),
            ]
        );
    }

    #[test]
    fn unknown_wrong_and_secret_keys_are_refused_by_name() {
        let unknown = entries("sync_intervall = 5", &serve()).unwrap_err();
        assert!(unknown.contains("`sync_intervall`"), "{unknown}");
        let wrong = entries("write_rate = \"lots\"", &serve()).unwrap_err();
        assert!(
            wrong.contains("`write_rate`") && wrong.contains("lots"),
            "{wrong}"
        );
        let range = entries("connection_test_timeout = 500.0", &serve()).unwrap_err();
        assert!(range.contains("between 0.1 and 120"), "{range}");
        let zero = entries("write_rate = 0", &serve()).unwrap_err();
        assert!(zero.contains("`write_rate`"), "{zero}");
        for (key, var) in SECRET_KEYS {
            let err = entries(&format!("{key} = \"hunter2-secret\""), &serve()).unwrap_err();
            assert!(err.contains(var) && !err.contains("hunter2"), "{err}");
        }
        assert!(entries("not toml at all [", &serve()).is_err());
    }
}
