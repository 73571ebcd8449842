//! The `socmate` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::accounts;
use crate::app::Application;
use crate::audit::AuditContext;
use crate::auth::{JwtKeys, Role, parse_ttl};
use crate::config::{DataArgs, Parsed, Secrets, ServeArgs, Settings};
use crate::crypto;
use crate::store::{DatabaseLocation, Db, StoreError};

#[derive(Debug, Parser)]
#[command(name = "socmate", version, about = "SoCMate SIEM gateway")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the API server.
    Serve(ServeArgs),
    /// Apply pending database migrations and exit (`serve` also applies them at start).
    Migrate {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Manage bearer tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Master keys: re-encrypt stored secrets under the active key, or show key usage.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Check the configuration (flags, environment, config file) without starting.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the OpenAPI 3.1 document of the API (also served at /api/openapi.json).
    Openapi,
    /// Manage console users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Re-encrypt every stored secret under the active key (the first of SOCMATE_MASTER_KEYS).
    /// Safe to interrupt and to run again; prints {"rewrapped","failed","remaining"}.
    Rotate {
        #[command(flatten)]
        data: DataArgs,
        /// Secrets re-encrypted per transaction.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..))]
        batch_size: u16,
    },
    /// List the key ids in the database and in the configuration, and how many secrets each
    /// encrypts.
    Status {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Declare a key lost for good: the secrets it encrypts stop blocking start-up and must be
    /// re-entered by an admin (PATCH client_secret). Use only when no copy of the key exists.
    Forget {
        #[command(flatten)]
        data: DataArgs,
        /// The key id, as `keys status` or the start-up error names it.
        #[arg(long)]
        key_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate the layered configuration and print each effective value and its source.
    Check(ServeArgs),
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a console user; the password is read from the first line of stdin.
    Add {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        email: String,
        #[arg(long, value_enum)]
        role: Role,
    },
    /// Set a user's password (first line of stdin) and end their sessions.
    Passwd {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        email: String,
    },
    /// Remove a user and end their sessions.
    Remove {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        email: String,
    },
    /// List users and their roles.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a signed bearer token on stdout.
    Issue {
        #[command(flatten)]
        data: DataArgs,
        /// The caller's email, recorded as `created_by` on what they create.
        #[arg(long)]
        email: String,
        #[arg(long, value_enum)]
        role: Role,
        /// Lifetime such as 8h, 30m, 7d (at most 30d).
        #[arg(long, default_value = "8h", value_parser = parse_ttl)]
        ttl: Duration,
    },
}

/// Runs the parsed command line; `parsed` tells `config check` where each value came from.
pub fn main(cli: Cli, parsed: &Parsed) -> ExitCode {
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check(args),
        } => check_config(args, parsed),
        Command::Serve(args) => serve(args),
        Command::Migrate { data } => migrate(&data),
        Command::Token {
            command:
                TokenCommand::Issue {
                    data,
                    email,
                    role,
                    ttl,
                },
        } => issue_token(&data, &email, role, ttl),
        Command::Keys {
            command: KeysCommand::Rotate { data, batch_size },
        } => rotate_keys(&data, batch_size.into()),
        Command::Keys {
            command: KeysCommand::Status { data },
        } => key_status(&data),
        Command::Keys {
            command: KeysCommand::Forget { data, key_id },
        } => forget_key(&data, &key_id),
        Command::Openapi => {
            match crate::provider_types::registry(&Settings::defaults().provider_types) {
                Ok(registry) => match crate::openapi::document(&registry).to_pretty_json() {
                    Ok(json) => {
                        println!("{json}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(&format!("cannot render the OpenAPI document: {e}")),
                },
                Err(e) => fail(&format!("cannot set up the provider types: {e}")),
            }
        }
        Command::User {
            command: UserCommand::Add { data, email, role },
        } => add_user(&data, &email, role),
        Command::User {
            command: UserCommand::Passwd { data, email },
        } => set_password(&data, &email),
        Command::User {
            command: UserCommand::Remove { data, email },
        } => remove_user(&data, &email),
        Command::User {
            command: UserCommand::List { data },
        } => list_users(&data),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let settings = match Settings::new(args, Secrets::from_env()) {
        Ok(s) => s,
        Err(e) => return fail(&format!("invalid configuration: {e}")),
    };
    crate::telemetry::init(settings.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    let code = runtime.block_on(async {
        let app = match Application::build(settings).await {
            Ok(app) => app,
            Err(e) => return fail(&e.to_string()),
        };
        let shutdown = CancellationToken::new();
        tokio::spawn(signal_shutdown(shutdown.clone()));
        match app.run(shutdown).await {
            Ok(()) => {
                tracing::info!("socmate stopped");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("server error: {e}")),
        }
    });
    // A sync may still be inside a blocking DNS lookup of an unreachable upstream; dropping the
    // runtime would wait for it. Nothing it holds needs finishing: its lease simply expires.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    code
}

/// How long the process waits, after serving stopped, for blocking work to end.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

fn migrate(data: &DataArgs) -> ExitCode {
    crate::telemetry::init(crate::config::LogFormat::Text);
    with_database(data, |db, _| async move {
        db.migrate().await.map_err(|e| e.to_string())?;
        println!("database schema is up to date ({})", db.backend_name());
        Ok(())
    })
}

fn add_user(data: &DataArgs, email: &str, role: Role) -> ExitCode {
    crate::telemetry::init(crate::config::LogFormat::Text);
    let email = match check_email(email) {
        Ok(email) => email,
        Err(message) => return fail(&message),
    };
    let hash = match read_password_hash() {
        Ok(hash) => hash,
        Err(message) => return fail(&message),
    };
    with_database(data, |db, _| async move {
        db.migrate().await.map_err(|e| e.to_string())?;
        let ctx = operator("socmate user add");
        match accounts::store::add_user(&db, &email, role, &hash, &ctx).await {
            Ok(_) => {
                println!("added {} user {}", crate::audit::role_name(role), email);
                Ok(())
            }
            Err(StoreError::UniqueViolation) => {
                Err(format!("a user with email {email} already exists"))
            }
            Err(e) => Err(e.to_string()),
        }
    })
}

fn rotate_keys(data: &DataArgs, batch_size: usize) -> ExitCode {
    crate::telemetry::init(crate::config::LogFormat::Text);
    with_database(data, |db, dir| async move {
        db.migrate().await.map_err(|e| e.to_string())?;
        let (keyring, _) = crypto::load_verified_keyring(&db, &Secrets::from_env(), &dir)
            .await
            .map_err(|e| e.to_string())?;
        crypto::ensure_keys_in_use_are_loaded(&db, &keyring)
            .await
            .map_err(|e| e.to_string())?;
        let ctx = operator("socmate keys rotate");
        let report = crypto::rotation::rotate(&db, &keyring, &ctx, batch_size)
            .await
            .map_err(|e| e.to_string())?;
        // Struct order: rewrapped, failed, remaining.
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
        if report.failed > 0 {
            return Err(format!(
                "{} secret(s) could not be decrypted with any configured key; see the warnings \
                 above, then re-enter those secrets (PATCH client_secret)",
                report.failed
            ));
        }
        Ok(())
    })
}

fn key_status(data: &DataArgs) -> ExitCode {
    crate::telemetry::init(crate::config::LogFormat::Text);
    with_database(data, |db, dir| async move {
        db.migrate().await.map_err(|e| e.to_string())?;
        let (keyring, _) = crypto::load_verified_keyring(&db, &Secrets::from_env(), &dir)
            .await
            .map_err(|e| e.to_string())?;
        let status = crypto::rotation::status(&db, &keyring)
            .await
            .map_err(|e| e.to_string())?;
        println!(
            "{}",
            serde_json::to_string_pretty(&status).unwrap_or_default()
        );
        Ok(())
    })
}

fn set_password(data: &DataArgs, email: &str) -> ExitCode {
    crate::telemetry::init(crate::config::LogFormat::Text);
    let hash = match read_password_hash() {
        Ok(hash) => hash,
        Err(message) => return fail(&message),
    };
    let email = email.trim().to_owned();
    with_database(data, |db, _| async move {
        db.migrate().await.map_err(|e| e.to_string())?;
        let ctx = operator("socmate user passwd");
        match accounts::store::set_password(&db, &email, &hash, &ctx).await {
            Ok(true) => {
                println!(
                    "password of {} changed; their sessions ended",
                    email.to_lowercase()
                );
                Ok(())
            }
            Ok(false) => Err(format!("no user with email {email}")),
            Err(e) => Err(e.to_string()),
        }
    })
}

fn remove_user(data: &DataArgs, email: &str) -> ExitCode {
    crate::telemetry::init(crate::config::LogFormat::Text);
    let email = email.trim().to_owned();
    with_database(data, |db, _| async move {
        db.migrate().await.map_err(|e| e.to_string())?;
        let ctx = operator("socmate user remove");
        match accounts::store::remove_user(&db, &email, &ctx).await {
            Ok(true) => {
                println!("removed {}; their sessions ended", email.to_lowercase());
                Ok(())
            }
            Ok(false) => Err(format!("no user with email {email}")),
            Err(e) => Err(e.to_string()),
        }
    })
}

fn list_users(data: &DataArgs) -> ExitCode {
    crate::telemetry::init(crate::config::LogFormat::Text);
    with_database(data, |db, _| async move {
        db.migrate().await.map_err(|e| e.to_string())?;
        for (email, role) in accounts::store::list_users(&db)
            .await
            .map_err(|e| e.to_string())?
        {
            println!("{email}\t{role}");
        }
        Ok(())
    })
}

fn forget_key(data: &DataArgs, key_id: &str) -> ExitCode {
    crate::telemetry::init(crate::config::LogFormat::Text);
    let key_id = key_id.trim().to_owned();
    with_database(data, |db, dir| async move {
        db.migrate().await.map_err(|e| e.to_string())?;
        let (keyring, _) = crypto::load_verified_keyring(&db, &Secrets::from_env(), &dir)
            .await
            .map_err(|e| e.to_string())?;
        if keyring.cipher(&key_id).is_some() {
            return Err(format!(
                "key id {key_id} is configured: it is not lost; rotate away from it instead"
            ));
        }
        let ctx = operator("socmate keys forget");
        let secrets = crypto::rotation::forget(&db, &key_id, &ctx)
            .await
            .map_err(|e| e.to_string())?;
        println!(
            "key id {key_id} forgotten: {secrets} stored secret(s) must be re-entered (PATCH client_secret)"
        );
        Ok(())
    })
}

/// Reads a new password from the first line of stdin and hashes it.
fn read_password_hash() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    let password = SecretString::from(line.trim_end_matches(['\r', '\n']).to_owned());
    drop(line);
    accounts::hash_password(&password).map_err(|e| e.to_string())
}

/// The audit identity of a command run by the operator on the host.
fn operator(command: &str) -> AuditContext {
    AuditContext {
        actor: command.to_owned(),
        actor_role: "operator",
        request_id: None,
        client_addr: None,
    }
}

/// Opens the configured database (PostgreSQL from SOCMATE_DATABASE_URL, else SQLite in the data
/// dir), runs `work` with it and the data dir, and closes it.
fn with_database<F, Fut>(data: &DataArgs, work: F) -> ExitCode
where
    F: FnOnce(Db, PathBuf) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let data_dir = data.data_dir.clone();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(async {
        let secrets = Secrets::from_env();
        let location = match &secrets.database_url {
            Some(url) => DatabaseLocation::Url(url),
            None => {
                if let Err(e) = std::fs::create_dir_all(&data_dir) {
                    return fail(&format!(
                        "cannot create data directory {}: {e}",
                        data_dir.display()
                    ));
                }
                DatabaseLocation::SqliteIn(&data_dir)
            }
        };
        let db = match Db::connect(location).await {
            Ok(db) => db,
            Err(e) => return fail(&format!("cannot open the database: {e}")),
        };
        let outcome = work(db.clone(), data_dir.clone()).await;
        db.close().await;
        match outcome {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => fail(&message),
        }
    })
}

/// The email in the canonical form it is stored and compared in (`text::label`, lowercased).
fn check_email(email: &str) -> Result<String, String> {
    let email = crate::text::label(email, 254).map_err(|e| format!("--email {e}"))?;
    if !email.contains('@') || email.contains(' ') {
        return Err("--email must be an email address such as admin@example.com".to_owned());
    }
    Ok(accounts::store::normalize_email(&email))
}

fn issue_token(data: &DataArgs, email: &str, role: Role, ttl: Duration) -> ExitCode {
    let email = match check_email(email) {
        Ok(email) => email,
        Err(message) => return fail(&message),
    };
    let email = email.as_str();
    let data_dir = &data.data_dir;
    if let Err(e) = std::fs::create_dir_all(data_dir) {
        return fail(&format!(
            "cannot create data directory {}: {e}",
            data_dir.display()
        ));
    }
    let keys = match JwtKeys::load(Secrets::from_env().jwt_secret.as_ref(), data_dir) {
        Ok(k) => k,
        Err(e) => return fail(&e.to_string()),
    };
    match keys.issue(email, role, ttl) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("cannot sign the token: {e}")),
    }
}

fn check_config(args: ServeArgs, parsed: &Parsed) -> ExitCode {
    use clap::CommandFactory as _;
    let secrets = Secrets::from_env();
    let lines = crate::config::describe(&Cli::command(), parsed, &secrets);
    match Settings::new(args, secrets) {
        Ok(_) => {
            for line in lines {
                println!("{line}");
            }
            println!("configuration OK");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("invalid configuration: {e}")),
    }
}

async fn signal_shutdown(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM; stop with Ctrl-C");
                    let _ = ctrl_c.await;
                    shutdown.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested; finishing in-flight requests");
    shutdown.cancel();
}

fn fail(message: &str) -> ExitCode {
    tracing::error!("{message}");
    eprintln!("socmate: {message}");
    ExitCode::FAILURE
}
