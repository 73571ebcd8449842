//! Entra ID v2 token endpoint: success shape/headers and every error case with its exact
//! `error`, `error_codes` and message text.

use crate::common::*;
use azure_emulator::{AppSecret, Endpoint};
use serde_json::Value;

fn form<'a>(client_id: &'a str, secret: &'a str, scope: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("client_id", client_id),
        ("client_secret", secret),
        ("scope", scope),
        ("grant_type", "client_credentials"),
    ]
}

/// Checks the AADSTS envelope and returns the description's first line.
fn assert_aad_error(body: &Value, error: &str, code: u64) -> String {
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], serde_json::json!([code]), "{body}");
    let desc = body["error_description"].as_str().unwrap();
    let trace = body["trace_id"].as_str().unwrap();
    let corr = body["correlation_id"].as_str().unwrap();
    let ts = body["timestamp"].as_str().unwrap();
    assert_eq!(trace.len(), 36);
    assert_eq!(corr.len(), 36);
    // "YYYY-MM-DD HH:MM:SSZ"
    assert_eq!(ts.len(), 20, "{ts}");
    assert_eq!(&ts[10..11], " ");
    assert!(ts.ends_with('Z'));
    assert_eq!(
        body["error_uri"],
        format!("https://login.microsoftonline.com/error?code={code}")
    );
    let lines: Vec<&str> = desc.split("\r\n").collect();
    assert_eq!(lines.len(), 4, "{desc:?}");
    assert!(lines[0].starts_with(&format!("AADSTS{code}: ")), "{desc}");
    assert_eq!(lines[1], format!("Trace ID: {trace}"));
    assert_eq!(lines[2], format!("Correlation ID: {corr}"));
    assert_eq!(lines[3], format!("Timestamp: {ts}"));
    lines[0].to_owned()
}

#[tokio::test]
async fn success_shape_and_headers() {
    let emu = start().await;
    for tenant in [TENANT, DOMAIN, "CONTOSO.onmicrosoft.com"] {
        for scope in [LA_SCOPE, GRAPH_SCOPE, "https://graph.microsoft.us/.default"] {
            let (status, headers, body) =
                token_request(&emu, tenant, &form(CLIENT, SECRET, scope)).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["token_type"], "Bearer");
            assert_eq!(body["expires_in"], 3599);
            assert_eq!(body["ext_expires_in"], 3599);
            assert!(body["access_token"].as_str().unwrap().len() > 32);
            assert_eq!(headers["cache-control"], "no-store, no-cache");
            assert_eq!(headers["pragma"], "no-cache");
            assert_eq!(headers["content-type"], "application/json; charset=utf-8");
        }
    }
    let reqs = emu.requests();
    assert_eq!(emu.request_count(Endpoint::Token), 9);
    assert!(
        reqs.iter()
            .all(|r| r.tenant.as_deref() == Some(TENANT) && r.status == 200)
    );
}

#[tokio::test]
async fn lifetime_is_configurable_and_tokens_differ() {
    let mut cfg = config();
    cfg.token_lifetime_secs = 120;
    let emu = start_with(cfg).await;
    let (_, _, a) = token_request(&emu, TENANT, &form(CLIENT, SECRET, LA_SCOPE)).await;
    let (_, _, b) = token_request(&emu, TENANT, &form(CLIENT, SECRET, LA_SCOPE)).await;
    assert_eq!(a["expires_in"], 120);
    assert_eq!(a["ext_expires_in"], 120);
    assert_ne!(a["access_token"], b["access_token"]);
}

#[tokio::test]
async fn error_cases() {
    let emu = start().await;
    emu.update(|c| {
        let app = c.tenants[0].app_mut(CLIENT).unwrap();
        app.secrets.push(AppSecret::expired("old-secret"));
    });

    // Unknown tenant (by domain): 400 invalid_tenant 90002, fixture text.
    let (s, _, b) = token_request(
        &emu,
        "fabrikam.onmicrosoft.com",
        &form(CLIENT, SECRET, LA_SCOPE),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        assert_aad_error(&b, "invalid_tenant", 90002),
        "AADSTS90002: Tenant 'fabrikam.onmicrosoft.com' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
    );

    // Unknown client: 400 unauthorized_client 700016 naming app and tenant.
    let other = "00000000-1111-4222-8333-444444444444";
    let (s, _, b) = token_request(&emu, TENANT, &form(other, SECRET, LA_SCOPE)).await;
    assert_eq!(s, 400);
    assert_eq!(
        assert_aad_error(&b, "unauthorized_client", 700016),
        format!(
            "AADSTS700016: Application with identifier '{other}' was not found in the directory '{TENANT}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
        )
    );

    // Missing secret: 401 invalid_client 7000218.
    let (s, _, b) = token_request(
        &emu,
        TENANT,
        &[
            ("client_id", CLIENT),
            ("scope", LA_SCOPE),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    assert_eq!(s, 401);
    assert_eq!(
        assert_aad_error(&b, "invalid_client", 7000218),
        "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'."
    );

    // Wrong secret: 401 invalid_client 7000215, fixture text.
    let (s, _, b) = token_request(&emu, TENANT, &form(CLIENT, "wrong", LA_SCOPE)).await;
    assert_eq!(s, 401);
    assert_eq!(
        assert_aad_error(&b, "invalid_client", 7000215),
        format!(
            "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{CLIENT}'."
        )
    );

    // Expired secret: 401 invalid_client 7000222.
    let (s, _, b) = token_request(&emu, TENANT, &form(CLIENT, "old-secret", LA_SCOPE)).await;
    assert_eq!(s, 401);
    assert_eq!(
        assert_aad_error(&b, "invalid_client", 7000222),
        format!(
            "AADSTS7000222: The provided client secret keys for app '{CLIENT}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."
        )
    );

    // Unknown audience: 400 invalid_scope 70011, fixture text.
    let scope = "https://foo.microsoft.com/.default";
    let (s, _, b) = token_request(&emu, TENANT, &form(CLIENT, SECRET, scope)).await;
    assert_eq!(s, 400);
    assert_eq!(
        assert_aad_error(&b, "invalid_scope", 70011),
        "AADSTS70011: The provided value for the input parameter 'scope' is not valid. The scope https://foo.microsoft.com/.default is not valid."
    );

    // Scope without /.default: 400 invalid_scope 1002012 (what Entra really answers).
    let (s, _, b) = token_request(
        &emu,
        TENANT,
        &form(
            CLIENT,
            SECRET,
            "https://graph.microsoft.com/SecurityIncident.Read.All",
        ),
    )
    .await;
    assert_eq!(s, 400);
    assert!(assert_aad_error(&b, "invalid_scope", 1002012).contains("/.default"));

    // Two resources in one request: 400 invalid_scope 70011.
    let (s, _, b) = token_request(
        &emu,
        TENANT,
        &form(CLIENT, SECRET, &format!("{LA_SCOPE} {GRAPH_SCOPE}")),
    )
    .await;
    assert_eq!(s, 400);
    assert_aad_error(&b, "invalid_scope", 70011);

    // Wrong grant type: 400 unsupported_grant_type 70003.
    let (s, _, b) = token_request(
        &emu,
        TENANT,
        &[
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("scope", LA_SCOPE),
            ("grant_type", "password"),
        ],
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        assert_aad_error(&b, "unsupported_grant_type", 70003),
        "AADSTS70003: The app requested an unsupported grant type 'password'."
    );

    // Missing parameters: 400 invalid_request 900144 naming the parameter.
    for (missing, fields) in [
        (
            "grant_type",
            vec![
                ("client_id", CLIENT),
                ("client_secret", SECRET),
                ("scope", LA_SCOPE),
            ],
        ),
        (
            "client_id",
            vec![
                ("client_secret", SECRET),
                ("scope", LA_SCOPE),
                ("grant_type", "client_credentials"),
            ],
        ),
        (
            "scope",
            vec![
                ("client_id", CLIENT),
                ("client_secret", SECRET),
                ("grant_type", "client_credentials"),
            ],
        ),
    ] {
        let (s, _, b) = token_request(&emu, TENANT, &fields).await;
        assert_eq!(s, 400, "{missing}");
        assert_eq!(
            assert_aad_error(&b, "invalid_request", 900144),
            format!(
                "AADSTS900144: The request body must contain the following parameter: '{missing}'."
            )
        );
    }

    // The request log never contains the secret.
    let log = format!("{:?}", emu.requests());
    assert!(!log.contains(SECRET) && !log.contains("old-secret"));
    assert_eq!(emu.request_count(Endpoint::Token), 12);
}

#[tokio::test]
async fn secret_rotation_and_expired_plus_valid() {
    let emu = start().await;
    emu.update(|c| {
        let app = c.tenants[0].app_mut(CLIENT).unwrap();
        app.secrets = vec![AppSecret::expired("same"), AppSecret::new("same")];
    });
    let (s, _, _) = token_request(&emu, TENANT, &form(CLIENT, "same", LA_SCOPE)).await;
    assert_eq!(s, 200);
    emu.update(|c| c.tenants[0].app_mut(CLIENT).unwrap().secrets[1].expired = true);
    let (s, _, b) = token_request(&emu, TENANT, &form(CLIENT, "same", LA_SCOPE)).await;
    assert_eq!(s, 401);
    assert_eq!(b["error_codes"][0], 7000222);
}
