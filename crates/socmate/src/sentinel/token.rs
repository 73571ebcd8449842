//! Entra ID app-only tokens (OAuth2 client credentials) and their cache.
//!
//! One token per (authority, tenant, client, scope, secret): the secret enters the key only as
//! an HMAC under a per-process key, so a rotated secret never reuses the old secret's token and
//! the cache holds nothing that reveals a secret. Each key has its own async lock, so fifty
//! callers waiting on an expired token cause one token request (single flight).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::hmac;
use reqwest::StatusCode;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use super::cloud::join_segments;
use super::outbound::{SendError, read_body, send_once_retrying};

/// Tokens are renewed this long before they expire, as the Azure SDKs do.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// What a token request needs. Borrowed, so the secret is never copied.
pub struct TokenRequest<'a> {
    pub authority_host: &'a Url,
    pub tenant_id: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a SecretString,
    pub scope: &'a str,
}

/// Entra ID refused or failed to issue a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("Entra ID rejected the token request (HTTP {status}, AADSTS{aadsts:?}, error {error})")]
    Rejected {
        status: u16,
        aadsts: Option<u64>,
        error: String,
        correlation_id: Option<String>,
    },
    #[error("Entra ID answered HTTP {status} without a usable token")]
    UnexpectedResponse { status: u16 },
    #[error(transparent)]
    Send(#[from] SendError),
}

impl TokenError {
    pub fn aadsts(&self) -> Option<u64> {
        match self {
            Self::Rejected { aadsts, .. } => *aadsts,
            _ => None,
        }
    }

    pub fn correlation_id(&self) -> Option<&str> {
        match self {
            Self::Rejected { correlation_id, .. } => correlation_id.as_deref(),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    /// A number on the v2 endpoint, a string on v1: accept both.
    expires_in: NumberOrString,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrString {
    Number(u64),
    Text(String),
}

#[derive(Deserialize, Default)]
struct TokenErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_codes: Vec<u64>,
    #[serde(default)]
    correlation_id: Option<String>,
}

#[derive(Clone)]
pub struct AccessToken {
    pub value: SecretString,
    pub expires_at: Instant,
}

/// The tenant id (`tid` claim) in an Entra ID access token, read from its payload without
/// verifying the signature: the token came straight from Entra ID over TLS, and only its issuer
/// could have chosen the claim (entra-docs `access-token-claims-reference.md`, `tid`: "the tenant
/// the user is signing in to", for app tokens the tenant the app signed in to). A tenant typed as
/// a domain is known by this id from then on.
pub fn tenant_of(token: &SecretString) -> Option<String> {
    use base64::Engine as _;
    let payload = token.expose_secret().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let tid = claims.get("tid")?.as_str()?;
    crate::siem::fields::is_guid(tid).then(|| tid.to_ascii_lowercase())
}

/// Requests a token now, bypassing any cache.
pub async fn request_token(
    http: &reqwest::Client,
    request: &TokenRequest<'_>,
    deadline: Instant,
) -> Result<AccessToken, TokenError> {
    let url = join_segments(
        request.authority_host,
        &[request.tenant_id, "oauth2", "v2.0", "token"],
    );
    let response = send_once_retrying(
        || {
            http.post(url.clone()).form(&[
                ("client_id", request.client_id),
                ("client_secret", request.client_secret.expose_secret()),
                ("scope", request.scope),
                ("grant_type", "client_credentials"),
            ])
        },
        deadline,
    )
    .await?;
    let status = response.status();
    let body = read_body(response, deadline).await?;
    if status == StatusCode::OK {
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| TokenError::UnexpectedResponse { status: 200 })?;
        let lifetime = match parsed.expires_in {
            NumberOrString::Number(n) => n,
            NumberOrString::Text(t) => t
                .trim()
                .parse()
                .map_err(|_| TokenError::UnexpectedResponse { status: 200 })?,
        };
        return Ok(AccessToken {
            value: SecretString::from(parsed.access_token),
            expires_at: Instant::now() + Duration::from_secs(lifetime),
        });
    }
    Err(rejection(status.as_u16(), &body))
}

/// Reads Entra ID's error body (`error`, `error_codes`, `correlation_id`).
pub fn rejection(status: u16, body: &[u8]) -> TokenError {
    match serde_json::from_slice::<TokenErrorBody>(body) {
        Ok(err) if !err.error.is_empty() => TokenError::Rejected {
            status,
            aadsts: err.error_codes.first().copied(),
            error: err.error,
            correlation_id: err.correlation_id,
        },
        _ => TokenError::UnexpectedResponse { status },
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    authority_host: String,
    tenant_id: String,
    client_id: String,
    scope: String,
    secret_fingerprint: Vec<u8>,
}

type Slot = Arc<tokio::sync::Mutex<Option<AccessToken>>>;

/// Whether a cached token may be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// A cached token with more than five minutes left is fine.
    Cached,
    /// Ask Entra ID now (connection tests must prove the credentials still work).
    Fresh,
}

pub struct TokenCache {
    slots: Mutex<HashMap<CacheKey, Slot>>,
    fingerprint_key: hmac::Key,
}

impl Default for TokenCache {
    fn default() -> Self {
        let mut key = [0u8; 32];
        crate::crypto::fill_random(&mut key);
        Self {
            slots: Mutex::default(),
            fingerprint_key: hmac::Key::new(hmac::HMAC_SHA256, &key),
        }
    }
}

impl TokenCache {
    pub async fn token(
        &self,
        http: &reqwest::Client,
        request: &TokenRequest<'_>,
        freshness: Freshness,
        deadline: Instant,
    ) -> Result<SecretString, TokenError> {
        let slot = self.slot(request);
        // A request for the same token may be waiting on a hung Entra ID: wait for it no
        // longer than this caller's own deadline.
        let mut cached = tokio::time::timeout_at(deadline, slot.lock())
            .await
            .map_err(|_| TokenError::Send(SendError::Timeout))?;
        if let Some(token) = cached.as_ref()
            && freshness == Freshness::Cached
            && token.expires_at > Instant::now() + REFRESH_MARGIN
        {
            return Ok(token.value.clone());
        }
        match request_token(http, request, deadline).await {
            Ok(token) => {
                let value = token.value.clone();
                *cached = Some(token);
                Ok(value)
            }
            // A failed early refresh keeps serving the still-valid token.
            Err(e) if freshness == Freshness::Cached => match cached.as_ref() {
                Some(token) if token.expires_at > Instant::now() => {
                    tracing::warn!(error = %e, "token refresh failed; serving the still-valid token");
                    Ok(token.value.clone())
                }
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Drops every token of this app registration (after a rotation or a delete).
    pub fn forget(&self, tenant_id: &str, client_id: &str) {
        self.lock_slots()
            .retain(|key, _| !(key.tenant_id == tenant_id && key.client_id == client_id));
    }

    pub fn len(&self) -> usize {
        self.lock_slots().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slot(&self, request: &TokenRequest<'_>) -> Slot {
        let key = CacheKey {
            authority_host: request.authority_host.as_str().to_owned(),
            tenant_id: request.tenant_id.to_owned(),
            client_id: request.client_id.to_owned(),
            scope: request.scope.to_owned(),
            secret_fingerprint: hmac::sign(
                &self.fingerprint_key,
                request.client_secret.expose_secret().as_bytes(),
            )
            .as_ref()
            .to_vec(),
        };
        self.lock_slots().entry(key).or_default().clone()
    }

    fn lock_slots(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Slot>> {
        // The map is only ever left consistent; a panic elsewhere cannot corrupt it.
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    fn token_with(claims: &str) -> SecretString {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        SecretString::from(format!("{}.{}.sig", b64.encode("{}"), b64.encode(claims)))
    }

    #[test]
    fn the_tenant_id_comes_from_the_tid_claim() {
        let token = token_with(r#"{"tid":"72F988BF-86F1-41AF-91AB-2D7CD011DB47","roles":[]}"#);
        assert_eq!(
            tenant_of(&token).as_deref(),
            Some("72f988bf-86f1-41af-91ab-2d7cd011db47")
        );
        for bad in [
            r#"{"roles":[]}"#,
            r#"{"tid":"contoso.onmicrosoft.com"}"#,
            r#"{"tid":7}"#,
            "not json",
        ] {
            assert_eq!(tenant_of(&token_with(bad)), None, "{bad}");
        }
        assert_eq!(tenant_of(&SecretString::from("opaque".to_owned())), None);
    }
}
