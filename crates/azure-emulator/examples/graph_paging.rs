//! Measures how long a plain client needs to page through a large tenant's incidents.
//!
//! ```text
//! cargo run --release -p azure-emulator --example graph_paging -- [INCIDENTS] [ALERTS] [MAX_PAGES] [QUERY]
//! ```
//!
//! Defaults: 50 000 generated incidents, alerts topped up to 100 000 (extra alerts are copies
//! with a new id, attached to the same incidents), all pages, and the query
//! `$top=50&$expand=alerts&$filter=lastUpdateDateTime ge 2026-01-01T00:00:00Z` on
//! `/v1.0/security/incidents` (a QUERY starting with `/` names the path too). Prints the time
//! per phase and a digest of every page's `value` array, so that two builds can be checked to
//! serve the same data in the same order.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use azure_emulator::{EmulatorConfig, RunningEmulator, generate_incidents};
use chrono::{DateTime, Utc};
use serde_json::Value;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "b1a3c5d7-0000-4000-8000-00000000a001";
const SECRET: &str = "bench-secret";
const WS: &str = "c0ffee00-0000-4000-8000-00000000beef";

type Error = Box<dyn std::error::Error>;

fn arg<T: std::str::FromStr>(n: usize, default: T) -> T {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn config(incidents: usize, alerts: usize) -> Result<EmulatorConfig, Error> {
    let start: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")?.into();
    let (incidents, mut all_alerts) = generate_incidents(incidents, 42, start);
    let generated = all_alerts.len();
    let mut k = 0;
    while all_alerts.len() < alerts && generated > 0 {
        let mut copy = all_alerts[k % generated].clone();
        if let Some(obj) = copy.as_object_mut() {
            let id = obj.get("id").and_then(Value::as_str).unwrap_or_default();
            let id = Value::String(format!("{id}-copy{k}"));
            obj.insert("id".to_owned(), id);
        }
        all_alerts.push(copy);
        k += 1;
    }
    let mut c = EmulatorConfig::single_tenant(TENANT, CLIENT, SECRET, WS);
    c.tenants[0].incidents = incidents;
    c.tenants[0].alerts = all_alerts;
    // This example pages one deep listing, past Graph's `$skip` limit.
    c.graph_max_skip = None;
    Ok(c)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let n_incidents: usize = arg(1, 50_000);
    let n_alerts: usize = arg(2, 100_000);
    let max_pages: usize = arg(3, usize::MAX);
    let query: String = arg(
        4,
        "$top=50&$expand=alerts&$filter=lastUpdateDateTime ge 2026-01-01T00:00:00Z".to_owned(),
    );

    let t0 = Instant::now();
    let cfg = config(n_incidents, n_alerts)?;
    println!(
        "generated {} incidents, {} alerts in {:.2?}",
        cfg.tenants[0].incidents.len(),
        cfg.tenants[0].alerts.len(),
        t0.elapsed()
    );
    let emu = RunningEmulator::start(cfg).await?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?;
    let token: Value = client
        .post(format!("{}/{TENANT}/oauth2/v2.0/token", emu.url()))
        .form(&[
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await?
        .json()
        .await?;
    let token = token["access_token"]
        .as_str()
        .ok_or("no access token")?
        .to_owned();

    let t0 = Instant::now();
    // A query starting with `/` is a whole path and query (e.g. `/v1.0/security/alerts_v2?$top=9`).
    let path_and_query = if query.starts_with('/') {
        query.clone()
    } else {
        format!("/v1.0/security/incidents?{query}")
    };
    let mut next = Some(format!(
        "{}{}",
        emu.url(),
        path_and_query.replace(' ', "%20")
    ));
    let (mut pages, mut items, mut alerts, mut slowest) = (0usize, 0usize, 0usize, Duration::ZERO);
    let mut digest = DefaultHasher::new();
    while let Some(url) = next.take() {
        if pages == max_pages {
            break;
        }
        let t = Instant::now();
        let resp = client.get(&url).bearer_auth(&token).send().await?;
        let status = resp.status();
        let body = resp.text().await?;
        slowest = slowest.max(t.elapsed());
        if !status.is_success() {
            return Err(format!("{status}: {body}").into());
        }
        let page: Value = serde_json::from_str(&body)?;
        let value = page["value"].as_array().ok_or("no value array")?;
        items += value.len();
        alerts += value
            .iter()
            .filter_map(|i| i["alerts"].as_array())
            .map(Vec::len)
            .sum::<usize>();
        page["value"].to_string().hash(&mut digest);
        page.get("@odata.count")
            .map(Value::to_string)
            .hash(&mut digest);
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
        pages += 1;
    }
    let elapsed = t0.elapsed();
    println!(
        "{pages} pages, {items} incidents, {alerts} expanded alerts in {elapsed:.2?} ({:.2?}/page, slowest {slowest:.2?}); digest {:016x}",
        elapsed / pages.max(1) as u32,
        digest.finish()
    );
    emu.shutdown().await;
    Ok(())
}
