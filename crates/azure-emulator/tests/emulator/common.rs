//! Shared fixtures: a default tenant/app/workspace and request helpers.

use azure_emulator::{EmulatorConfig, RunningEmulator};
use serde_json::Value;
use std::time::Duration;

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const DOMAIN: &str = "contoso.onmicrosoft.com";
pub const CLIENT: &str = "b1a3c5d7-0000-4000-8000-00000000a001";
pub const SECRET: &str = "test-secret-value";
pub const WS: &str = "c0ffee00-0000-4000-8000-00000000beef";
pub const LA_SCOPE: &str = "https://api.loganalytics.io/.default";
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

pub fn config() -> EmulatorConfig {
    let mut c = EmulatorConfig::single_tenant(TENANT, CLIENT, SECRET, WS);
    c.tenants[0].domains.push(DOMAIN.to_owned());
    c
}

pub async fn start() -> RunningEmulator {
    start_with(config()).await
}

pub async fn start_with(config: EmulatorConfig) -> RunningEmulator {
    RunningEmulator::start(config).await.unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// POSTs a token request with the given form fields; returns status, headers and JSON body.
pub async fn token_request(
    emu: &RunningEmulator,
    tenant: &str,
    form: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = client()
        .post(format!("{}/{tenant}/oauth2/v2.0/token", emu.url()))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json::<Value>().await.unwrap();
    (status, headers, body)
}

/// A valid access token for `scope` with the default credentials.
pub async fn token(emu: &RunningEmulator, scope: &str) -> String {
    token_for(emu, CLIENT, SECRET, scope).await
}

pub async fn token_for(
    emu: &RunningEmulator,
    client_id: &str,
    secret: &str,
    scope: &str,
) -> String {
    let (status, _, body) = token_request(
        emu,
        TENANT,
        &[
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", scope),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// GET with an optional bearer token; returns status, headers and body text.
pub async fn get(url: &str, bearer: Option<&str>) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = client().get(url);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

pub fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
