//! `azure-emulator --config FILE.json [--listen 127.0.0.1:4000]`: runs the emulator as a
//! separate process (for manual testing and out-of-process integration tests), prints
//! `azure-emulator listening on http://HOST:PORT` on stdout once ready, serves until SIGINT or
//! SIGTERM. Request lines are logged to stderr (`RUST_LOG` filter); secrets never are.
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use azure_emulator::{EmulatorConfig, RunningEmulator};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "azure-emulator",
    version,
    about = "Local Entra ID / Log Analytics / Microsoft Graph security emulator"
)]
struct Args {
    /// JSON configuration (tenants, apps, workspaces, incidents); see crates/azure-emulator/demo.json.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("azure_emulator=info")),
        )
        .init();
    let args = Args::parse();
    let config = match EmulatorConfig::from_file(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("azure-emulator: cannot load {}: {e}", args.config.display());
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("azure-emulator: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(2);
        }
    };
    let emulator = match RunningEmulator::start_on(config, listener).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("azure-emulator: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "azure-emulator listening on {}", emulator.url());
    let _ = stdout.flush();

    wait_for_signal().await;
    emulator.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
