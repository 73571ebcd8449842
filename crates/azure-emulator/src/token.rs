//! Entra ID v2 token endpoint, client-credentials grant only
//! (`POST /{tenant}/oauth2/v2.0/token`), with the real success and AADSTS error bodies
//! (`fixtures/aad-token-*.json`) so the client's token cache and error
//! classification can be tested. Request bodies carry secrets and are never logged.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;

use crate::state::Shared;
use crate::util;

const CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// Token audiences (scope without `/.default`) accepted for Log Analytics.
pub(crate) const LOG_ANALYTICS_AUDIENCES: [&str; 3] = [
    "https://api.loganalytics.io",
    "https://api.loganalytics.us",
    "https://api.loganalytics.azure.cn",
];

/// Token audiences accepted for Microsoft Graph.
pub(crate) const GRAPH_AUDIENCES: [&str; 4] = [
    "https://graph.microsoft.com",
    "https://graph.microsoft.us",
    "https://dod-graph.microsoft.us",
    "https://microsoftgraph.chinacloudapi.cn",
];

#[derive(Serialize)]
struct TokenSuccess<'a> {
    token_type: &'static str,
    expires_in: u64,
    ext_expires_in: u64,
    access_token: &'a str,
}

#[derive(Serialize)]
struct TokenError {
    error: &'static str,
    error_description: String,
    error_codes: [u32; 1],
    timestamp: String,
    trace_id: String,
    correlation_id: String,
    error_uri: String,
}

/// An Entra error response: `AADSTS<code>: <text>` plus trace/correlation ids and timestamp.
pub(crate) fn aad_error(
    status: StatusCode,
    error: &'static str,
    code: u32,
    text: &str,
) -> Response {
    let trace_id = util::uuid_v4();
    let correlation_id = util::uuid_v4();
    let timestamp = util::entra_timestamp();
    let body = TokenError {
        error,
        error_description: format!(
            "AADSTS{code}: {text}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}"
        ),
        error_codes: [code],
        timestamp,
        trace_id: trace_id.clone(),
        correlation_id,
        error_uri: format!("https://login.microsoftonline.com/error?code={code}"),
    };
    with_token_headers(util::json_response(status, CONTENT_TYPE, &body), &trace_id)
}

fn with_token_headers(mut resp: Response, request_id: &str) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::EXPIRES, HeaderValue::from_static("-1"));
    util::set_header(h, "x-ms-request-id", request_id);
    resp
}

/// Error body for an injected status fault on the token endpoint.
pub(crate) fn error_for_status(status: StatusCode) -> Response {
    match status.as_u16() {
        503 | 504 => aad_error(
            status,
            "temporarily_unavailable",
            90033,
            "A transient error has occurred. Please try again.",
        ),
        500..=599 => aad_error(
            status,
            "server_error",
            50000,
            "There was an error issuing a token or an issue with our sign-in service.",
        ),
        401 | 403 => aad_error(
            status,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
        ),
        400..=499 => aad_error(
            status,
            "invalid_request",
            50000,
            "There was an error issuing a token or an issue with our sign-in service.",
        ),
        _ => with_token_headers(
            axum::response::IntoResponse::into_response(status),
            &util::uuid_v4(),
        ),
    }
}

fn missing_parameter(name: &str) -> Response {
    aad_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{name}'."),
    )
}

/// `POST /{tenant}/oauth2/v2.0/token`
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    let mut params: HashMap<String, String> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(&body) {
        params
            .entry(k.into_owned())
            .or_insert_with(|| v.into_owned());
    }
    let param = |name: &str| params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());

    // Resolve tenant and app from the live configuration.
    let outcome = shared.with_config(|config| -> Result<(String, String, Vec<String>), Response> {
        let Some(t) = config.tenant(&tenant) else {
            return Err(aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_tenant",
                90002,
                &format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
                ),
            ));
        };
        let Some(grant_type) = param("grant_type") else {
            return Err(missing_parameter("grant_type"));
        };
        if grant_type != "client_credentials" {
            return Err(aad_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{grant_type}'."),
            ));
        }
        let Some(client_id) = param("client_id") else {
            return Err(missing_parameter("client_id"));
        };
        let Some(app) = t.app(client_id) else {
            return Err(aad_error(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                700016,
                &format!(
                    "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                    t.id
                ),
            ));
        };
        let Some(secret) = params.get("client_secret").filter(|s| !s.is_empty()) else {
            return Err(aad_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ));
        };
        let matching: Vec<bool> = app
            .secrets
            .iter()
            .filter(|s| s.value == *secret)
            .map(|s| s.expired)
            .collect();
        if matching.is_empty() {
            return Err(aad_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                &format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                    app.client_id
                ),
            ));
        }
        if matching.iter().all(|expired| *expired) {
            return Err(aad_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000222,
                &format!(
                    "The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.",
                    app.client_id
                ),
            ));
        }
        Ok((t.id.clone(), app.client_id.clone(), app.roles.clone()))
    });
    let (tenant_id, client_id, roles) = match outcome {
        Ok(ids) => ids,
        Err(resp) => return resp,
    };

    let Some(scope) = param("scope") else {
        return missing_parameter("scope");
    };
    let audience = match audience_of_scope(scope) {
        Ok(a) => a,
        Err(resp) => return resp,
    };

    let access_token = shared.issue_token(&tenant_id, &client_id, &audience, roles);
    let lifetime = shared.with_config(|c| c.token_lifetime_secs);
    tracing::debug!(%tenant_id, %client_id, %audience, "issued access token");
    let body = TokenSuccess {
        token_type: "Bearer",
        expires_in: lifetime,
        ext_expires_in: lifetime,
        access_token: &access_token,
    };
    with_token_headers(
        util::json_response(StatusCode::OK, CONTENT_TYPE, &body),
        &util::uuid_v4(),
    )
}

/// The canonical audience of a client-credentials `scope`, or the Entra error for it.
fn audience_of_scope(scope: &str) -> Result<String, Response> {
    let invalid = |text: String| {
        aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            &format!("The provided value for the input parameter 'scope' is not valid. {text}"),
        )
    };
    let mut audiences: Vec<String> = Vec::new();
    for s in scope.split_whitespace() {
        let Some(resource) = s.strip_suffix("/.default") else {
            // Real Entra uses AADSTS1002012 for a client-credentials scope without /.default.
            return Err(aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                1002012,
                &format!(
                    "The provided value for scope {s} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            ));
        };
        let resource = resource.trim_end_matches('/');
        let known = LOG_ANALYTICS_AUDIENCES
            .iter()
            .chain(GRAPH_AUDIENCES.iter())
            .find(|a| a.eq_ignore_ascii_case(resource));
        match known {
            Some(a) => {
                if !audiences.iter().any(|x| x == a) {
                    audiences.push((*a).to_owned());
                }
            }
            None => return Err(invalid(format!("The scope {scope} is not valid."))),
        }
    }
    match audiences.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(invalid(format!("The scope {scope} is not valid."))),
        _ => Err(invalid(format!(
            "One or more scopes in '{scope}' are not compatible with each other."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        assert_eq!(
            audience_of_scope("https://graph.microsoft.com/.default").ok(),
            Some("https://graph.microsoft.com".to_owned())
        );
        assert_eq!(
            audience_of_scope("https://api.loganalytics.io//.default").ok(),
            Some("https://api.loganalytics.io".to_owned())
        );
        assert!(audience_of_scope("https://foo.microsoft.com/.default").is_err());
        assert!(audience_of_scope("https://graph.microsoft.com/User.Read").is_err());
        assert!(
            audience_of_scope(
                "https://graph.microsoft.com/.default https://api.loganalytics.io/.default"
            )
            .is_err()
        );
    }
}
