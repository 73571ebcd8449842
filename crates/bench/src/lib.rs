//! Shared pieces of the benchmark harnesses: a release `socmate serve` in its own process,
//! tokens for it, the emulator's demo identity, and peak RSS from `/proc`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};
use socmate::auth::{JwtKeys, Role};

pub const JWT_SECRET: &str = "bench-jwt-secret-long-enough-0123456789abcdef";
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const CLIENT: &str = "b1a3c5d7-0000-4000-8000-00000000a001";
pub const SECRET: &str = "bench-secret-value-0000";
pub const WORKSPACE: &str = "c0ffee00-0000-4000-8000-00000000beef";

/// A running `socmate serve`; killed on drop.
pub struct Socmate {
    child: Child,
    pub base: String,
    data: tempfile::TempDir,
}

impl Socmate {
    /// Starts `binary` on a free port with a fresh data dir plus `envs`, and waits until it serves.
    pub async fn start(binary: &Path, envs: &[(&str, String)]) -> anyhow::Result<Self> {
        let data = tempfile::tempdir().context("cannot create a data dir")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .env("SOCMATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("SOCMATE_DATA_DIR", data.path())
            .env("SOCMATE_JWT_SECRET", JWT_SECRET)
            .env(
                "SOCMATE_MASTER_KEY",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            )
            .env("RUST_LOG", "warn")
            // A benchmark measures the server, not its per-caller limits (one token drives it all).
            .env("SOCMATE_WRITE_RATE", "100000000")
            .env("SOCMATE_CONNECTION_TEST_RATE", "100000000")
            .stdout(Stdio::null());
        for (name, value) in envs {
            command.env(name, value);
        }
        let child = command.spawn().with_context(|| {
            format!(
                "cannot start {} (build it with --release first)",
                binary.display()
            )
        })?;
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while reqwest::get(format!("{base}/healthz")).await.is_err() {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(30),
                "socmate did not start within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { child, base, data })
    }

    /// The server's data directory (its SQLite file lives here).
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// The peak resident set size (`VmHWM`) of the server so far, in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    }
}

impl Drop for Socmate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn token(role: Role) -> anyhow::Result<String> {
    Ok(JwtKeys::from_secret(JWT_SECRET.as_bytes())?.issue(
        "bench@example.com",
        role,
        Duration::from_secs(7200),
    )?)
}

/// A provider on the emulator's demo identity.
pub fn provider_body(name: &str) -> Value {
    json!({"name": name, "provider_type": "sentinel", "workspace_id": WORKSPACE, "tenant_id": TENANT,
        "client_id": CLIENT, "client_secret": SECRET})
}

/// Environment pointing every Azure endpoint at the emulator.
pub fn azure_env(emulator_url: &str) -> Vec<(&'static str, String)> {
    [
        "SOCMATE_AZURE_AUTHORITY_HOST",
        "SOCMATE_AZURE_LOG_ANALYTICS_ENDPOINT",
        "SOCMATE_AZURE_GRAPH_ENDPOINT",
    ]
    .into_iter()
    .map(|name| (name, emulator_url.to_owned()))
    .collect()
}

/// An access token from the emulator's Entra ID endpoint, for the plain-client baselines.
pub async fn emulator_token(
    http: &reqwest::Client,
    emulator_url: &str,
    scope: &str,
) -> anyhow::Result<String> {
    let body: Value = http
        .post(format!("{emulator_url}/{TENANT}/oauth2/v2.0/token"))
        .form(&[
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("scope", scope),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await?
        .json()
        .await?;
    Ok(body["access_token"]
        .as_str()
        .context("the emulator's token response has no access_token")?
        .to_owned())
}

/// Creates the benchmark provider and returns its id.
pub async fn create_provider(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let created: Value = http
        .post(format!("{base}/api/admin/siem-providers"))
        .bearer_auth(token(Role::Admin)?)
        .json(&provider_body("Bench"))
        .send()
        .await?
        .json()
        .await?;
    Ok(created["id"]
        .as_str()
        .with_context(|| format!("the benchmark provider was not created: {created}"))?
        .to_owned())
}
