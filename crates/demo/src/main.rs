//! `cargo run -p socmate-demo`: SoCMate working against the Azure emulator in one command.
//!
//! Starts the emulator (the demo tenant of `crates/azure-emulator/demo.json` plus generated
//! Defender/Sentinel incidents) and a real `socmate serve` on a fresh SQLite store in
//! `./socmate-demo-data`, adds an admin and an analyst with generated passwords, creates three
//! Sentinel providers (one reading Graph, one whose app has no permissions, one reading a
//! workspace that is not onboarded to the Defender portal from its own tables), tests them,
//! syncs the incidents and runs a query, then prints where to sign in. Ctrl-C stops it. Nothing here is
//! part of SoCMate itself: the demo drives the product through its public API and CLI library,
//! as an operator would.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use azure_emulator::{
    EmulatorConfig, Onboarding, RunningEmulator, Workspace, generate_incidents_for, with_id_prefix,
    workspace_tables,
};
use clap::Parser;
use secrecy::SecretString;
use serde_json::{Value, json};
use socmate::app::Application;
use socmate::audit::AuditContext;
use socmate::auth::{JwtKeys, Role};
use socmate::config::{Secrets, Settings};
use socmate::sentinel::cloud::parse_endpoint;
use socmate::store::{DatabaseLocation, Db};
use tokio_util::sync::CancellationToken;

const DEMO: &str = include_str!("../../azure-emulator/demo.json");
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const WORKSPACE: &str = "c0ffee00-0000-4000-8000-00000000beef";
/// A second workspace of the tenant, not onboarded to the Defender portal.
const BRANCH_WORKSPACE: &str = "c0ffee00-0000-4000-8000-0000000b7a2c";
const HEALTHY_CLIENT: &str = "b1a3c5d7-0000-4000-8000-00000000a001";
/// Marks a directory this demo created, so a rerun may replace it and nothing else is touched.
const MARKER: &str = ".socmate-demo";

#[derive(Parser)]
#[command(
    name = "socmate-demo",
    about = "SoCMate against the Azure emulator, with sample data"
)]
struct Args {
    /// Where the console and API listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The demo's data directory (replaced on each run).
    #[arg(long, default_value = "./socmate-demo-data")]
    data_dir: PathBuf,
    /// Incidents the emulated tenant holds.
    #[arg(long, default_value_t = 120)]
    incidents: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    socmate::telemetry::init(socmate::config::LogFormat::Text);
    let args = Args::parse();
    fresh_dir(&args.data_dir)?;
    let emulator = start_emulator(args.incidents).await?;
    let secrets = demo_secrets();
    let jwt = JwtKeys::from_secret(secret_bytes(&secrets.jwt_secret)?)?;
    let passwords = add_users(&args.data_dir).await?;
    let settings = settings(&args, &emulator, secrets)?;
    let app = Application::build(settings)
        .await
        .context("socmate did not start")?;
    let base = format!("http://{}", app.local_addr()?);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run(shutdown.clone()));

    let token = jwt.issue("admin@example.com", Role::Admin, Duration::from_secs(3600))?;
    let client = Api {
        http: reqwest::Client::new(),
        base: base.clone(),
        token,
    };
    let summary = populate(&client).await?;
    println!(
        "\nSoCMate demo is running at {base}/\n\n  admin:   admin@example.com / {}\n  analyst: analyst@example.com / {}\n\n{summary}\nCtrl-C stops it.",
        passwords.0, passwords.1
    );
    tokio::signal::ctrl_c().await?;
    shutdown.cancel();
    let _ = server.await;
    emulator.shutdown().await;
    Ok(())
}

/// Replaces a directory this demo made before; refuses any other existing directory.
fn fresh_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        if !dir.join(MARKER).exists() {
            bail!(
                "{} exists and was not made by socmate-demo; choose another --data-dir",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(MARKER),
        "made by socmate-demo; replaced on its next run\n",
    )?;
    Ok(())
}

/// The demo tenant as Microsoft runs it: Graph lists its Defender XDR incidents; the main
/// workspace is onboarded to the Defender portal, so its Sentinel incidents are in Graph too, but
/// those created by API are only in its tables; the branch workspace is not onboarded at all.
async fn start_emulator(incidents: usize) -> anyhow::Result<RunningEmulator> {
    let mut config = EmulatorConfig::from_json(DEMO)?;
    let start = chrono::Utc::now() - chrono::TimeDelta::days(5);
    let (generated, alerts) = generate_incidents_for(TENANT, incidents, 2026, start);
    let in_xdr: Vec<Value> = generated
        .iter()
        .filter(|i| {
            alerts
                .iter()
                .filter(|a| a["incidentId"] == i["id"])
                .all(|a| a["serviceSource"] == "microsoftSentinel")
        })
        .cloned()
        .collect();
    let (mut rows, mut alert_rows) =
        workspace_tables(WORKSPACE, &in_xdr, &alerts, Onboarding::Onboarded, 1);
    let (api, api_alerts) = with_id_prefix(
        generate_incidents_for(TENANT, incidents.div_ceil(10), 7, start),
        "api-",
    );
    let (more, more_alerts) = workspace_tables(
        WORKSPACE,
        &api,
        &api_alerts,
        Onboarding::NotInXdr,
        1 + in_xdr.len() as u64,
    );
    rows.extend(more);
    alert_rows.extend(more_alerts);
    let (branch, branch_alerts) = generate_incidents_for(TENANT, incidents.div_ceil(4), 8, start);
    let (branch_rows, branch_alert_rows) = workspace_tables(
        BRANCH_WORKSPACE,
        &branch,
        &branch_alerts,
        Onboarding::NotInXdr,
        1,
    );

    let tenant = config
        .tenant_mut(TENANT)
        .context("demo.json has the demo tenant")?;
    tenant.incidents.extend(generated);
    tenant.alerts.extend(alerts);
    let main = tenant
        .workspace_mut(WORKSPACE)
        .context("demo.json has the demo workspace")?;
    main.sentinel = true;
    main.security_incidents = rows;
    main.security_alerts = alert_rows;
    let mut branch = Workspace::new(BRANCH_WORKSPACE);
    branch.sentinel = true;
    branch.security_incidents = branch_rows;
    branch.security_alerts = branch_alert_rows;
    tenant.workspaces.push(branch);
    let app = tenant
        .app_mut(HEALTHY_CLIENT)
        .context("demo.json has the healthy app")?;
    app.workspaces.push(BRANCH_WORKSPACE.to_owned());
    Ok(RunningEmulator::start(config).await?)
}

fn random_text(bytes: usize) -> String {
    use base64::Engine as _;
    let mut buf = vec![0u8; bytes];
    socmate::crypto::fill_random(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// A master key and JWT secret for this run only (the store is thrown away with them).
fn demo_secrets() -> Secrets {
    Secrets {
        master_key: Some(socmate::crypto::MasterKey::generate().to_base64()),
        jwt_secret: Some(SecretString::from(random_text(36))),
        ..Secrets::default()
    }
}

fn secret_bytes(secret: &Option<SecretString>) -> anyhow::Result<&[u8]> {
    use secrecy::ExposeSecret as _;
    Ok(secret
        .as_ref()
        .context("the demo sets a JWT secret")?
        .expose_secret()
        .as_bytes())
}

/// Adds the admin and the analyst, as `socmate user add` does; returns their passwords.
async fn add_users(data_dir: &Path) -> anyhow::Result<(String, String)> {
    let db = Db::connect(DatabaseLocation::SqliteIn(data_dir)).await?;
    db.migrate().await?;
    let ctx = AuditContext {
        actor: "socmate-demo".into(),
        actor_role: "operator",
        request_id: None,
        client_addr: None,
    };
    let mut passwords = Vec::new();
    for (email, role) in [
        ("admin@example.com", Role::Admin),
        ("analyst@example.com", Role::Analyst),
    ] {
        let password = random_text(12);
        let hash = socmate::accounts::hash_password(&SecretString::from(password.clone()))?;
        socmate::accounts::store::add_user(&db, email, role, &hash, &ctx).await?;
        passwords.push(password);
    }
    db.close().await;
    Ok((passwords.remove(0), passwords.remove(0)))
}

fn settings(args: &Args, emulator: &RunningEmulator, secrets: Secrets) -> anyhow::Result<Settings> {
    let url = parse_endpoint("the emulator", &emulator.url())?;
    let mut settings = Settings::defaults();
    settings.data_dir = args.data_dir.clone();
    settings.listen = args.listen;
    let sentinel = &mut settings.provider_types.sentinel;
    sentinel.authority_host = Some(url.clone());
    sentinel.log_analytics_endpoint = Some(url.clone());
    sentinel.graph_endpoint = Some(url);
    settings.secrets = secrets;
    Ok(settings)
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{path} answered {status}: {body}");
        }
        Ok(body)
    }
}

/// Creates the providers, tests them, syncs the incidents and runs a query; says what it did.
async fn populate(api: &Api) -> anyhow::Result<String> {
    use reqwest::Method;
    const PROVIDERS: &str = "/api/admin/siem-providers";
    let provider = |name: &str, client: &str, secret: &str| {
        json!({"name": name, "provider_type": "sentinel", "workspace_id": WORKSPACE,
               "tenant_id": TENANT, "client_id": client, "client_secret": secret})
    };
    let healthy = api
        .call(
            Method::POST,
            PROVIDERS,
            Some(provider(
                "Contoso Sentinel",
                HEALTHY_CLIENT,
                "demo-secret-value-1234",
            )),
        )
        .await?;
    let limited = api
        .call(
            Method::POST,
            PROVIDERS,
            Some(provider(
                "Contoso (no permissions)",
                "b1a3c5d7-0000-4000-8000-00000000a002",
                "demo-secret-no-roles-5678",
            )),
        )
        .await?;
    let mut branch_body = provider("Contoso branch", HEALTHY_CLIENT, "demo-secret-value-1234");
    branch_body["workspace_id"] = json!(BRANCH_WORKSPACE);
    branch_body["incident_source"] = json!("workspace");
    let branch = api.call(Method::POST, PROVIDERS, Some(branch_body)).await?;
    let mut lines = Vec::new();
    for p in [&healthy, &limited, &branch] {
        let id = p["id"].as_str().unwrap_or_default();
        let test = api
            .call(Method::POST, &format!("{PROVIDERS}/{id}/test"), None)
            .await?;
        let failing: Vec<&str> = test["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["status"] == "failed" || c["status"] == "warning")
            .filter_map(|c| c["code"].as_str())
            .collect();
        lines.push(format!(
            "  provider “{}”: {}{}",
            p["name"].as_str().unwrap_or_default(),
            test["status"].as_str().unwrap_or_default(),
            if failing.is_empty() {
                String::new()
            } else {
                format!(" ({})", failing.join(", "))
            }
        ));
    }
    // The default provider's first sync may already be running (creating it wakes the
    // scheduler); a triggered run then waits its turn. What counts is what the store holds.
    for p in [&healthy, &branch] {
        let id = p["id"].as_str().unwrap_or_default();
        api.call(Method::POST, &format!("{PROVIDERS}/{id}/sync"), None)
            .await?;
        wait_for_sync(api, &format!("{PROVIDERS}/{id}/sync")).await?;
        let listed = api
            .call(
                Method::GET,
                &format!("/api/incidents?provider_id={id}&limit=1"),
                None,
            )
            .await?;
        let merged = api
            .call(
                Method::GET,
                &format!("/api/incidents?provider_id={id}&status=redirected&limit=1"),
                None,
            )
            .await?;
        lines.push(format!(
            "  incidents synced for “{}”: {} (and {} merged into others)",
            p["name"].as_str().unwrap_or_default(),
            listed["total"],
            merged["total"]
        ));
    }
    let query = api
        .call(
            Method::POST,
            "/api/siem/query",
            Some(json!({"query": "SecurityIncident | summarize count() by Status"})),
        )
        .await?;
    lines.push(format!(
        "  query “SecurityIncident | summarize count() by Status”: {} rows",
        query["tables"][0]["rows"].as_array().map_or(0, Vec::len)
    ));
    Ok(lines.join("\n") + "\n")
}

async fn wait_for_sync(api: &Api, path: &str) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = api.call(reqwest::Method::GET, path, None).await?;
        if status["state"] == "idle" && !status["last_finished_at"].is_null() {
            if let Some(error) = status["last_error"].as_object() {
                bail!("the incident sync failed: {}", Value::Object(error.clone()));
            }
            return Ok(status);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the incident sync did not finish within a minute");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
