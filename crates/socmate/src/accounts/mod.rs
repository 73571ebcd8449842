//! Local console accounts: users with argon2id passwords (`socmate user add`), sign-in, and
//! the browser session cookie.
//!
//! The cookie is HttpOnly (scripts cannot read it), SameSite=Strict (other sites cannot send
//! it), Secure when the request arrived over HTTPS at the proxy, and holds a random token whose
//! hash is the only thing stored. Cross-site request forgery is refused twice over: SameSite,
//! and [`CSRF_HEADER`], which state-changing cookie requests must carry and which a cross-site
//! form cannot set (see `auth::authenticate`).

mod password;
mod sign_in_limits;
pub mod store;

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use password::{MIN_PASSWORD_LEN, PasswordError, hash as hash_password};
pub use sign_in_limits::SignInLimits;

use crate::audit::{self, AuditContext};
use crate::auth::{AuthUser, Role};
use crate::http::client_addr::ClientAddr;
use crate::http::{ApiError, AppJson};
use crate::store::Db;

pub const SESSION_COOKIE: &str = "socmate_session";
/// Header that cookie-authenticated state-changing requests must carry (value: `SoCMate`).
pub const CSRF_HEADER: &str = "x-requested-with";
pub const CSRF_HEADER_VALUE: &str = "SoCMate";
const INVALID_CREDENTIALS: &str = "The email or password is incorrect.";

#[derive(Clone)]
pub struct Accounts {
    pub db: Db,
    pub sign_in_limits: Arc<SignInLimits>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    #[schema(max_length = 254)]
    email: String,
    #[schema(value_type = String, write_only, max_length = 4096)]
    password: SecretString,
}

#[derive(Serialize, ToSchema)]
struct Me {
    email: String,
    role: Role,
}

/// `POST /api/auth/login`, reachable without credentials.
pub fn public_routes() -> OpenApiRouter<Accounts> {
    OpenApiRouter::new().routes(routes!(login))
}

const TAG: &str = "Console sign-in";

/// `POST /api/auth/logout` and `GET /api/auth/me`, behind `authenticate`.
pub fn session_routes() -> OpenApiRouter<Accounts> {
    OpenApiRouter::new()
        .routes(routes!(logout))
        .routes(routes!(me))
}

/// Sign in with a console user's email and password; sets the session cookie.
#[utoipa::path(post, path = "/login", tag = TAG, request_body = LoginBody, security(()),
    responses((status = 200, description = "Signed in", body = Me,
        headers(("Set-Cookie" = String, description = "socmate_session; HttpOnly; SameSite=Strict"))),
        (status = 401, description = "The email or password is incorrect (one answer for both)",
            body = crate::http::Problem, content_type = "application/problem+json")))]
async fn login(
    State(accounts): State<Accounts>,
    parts: Parts,
    AppJson(body): AppJson<LoginBody>,
) -> Result<Response, ApiError> {
    // Emails are not secrets, but cap what an attacker can make us store.
    let attempted: String = store::normalize_email(&body.email)
        .chars()
        .take(254)
        .collect();
    let ctx = audit::context_for(&parts, attempted.clone(), "none");
    let client = client_addr(&parts);
    if let Err(wait) = accounts.sign_in_limits.admit(&attempted, &client) {
        audit::record_refusal(&accounts.db, &ctx, "auth.login", "rate_limited", None).await?;
        return Err(ApiError::rate_limited(
            "Too many sign-in attempts; wait before trying again.",
            wait,
        ));
    }

    let user = store::find_user(&accounts.db, &attempted).await?;
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    let password = body.password;
    let verified =
        tokio::task::spawn_blocking(move || password::verify(&password, stored_hash.as_deref()))
            .await
            .unwrap_or(false);
    let Some(user) = user.filter(|_| verified) else {
        accounts.sign_in_limits.failed(&attempted, &client);
        audit::record_refusal(&accounts.db, &ctx, "auth.login", "failure", None).await?;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            INVALID_CREDENTIALS,
        ));
    };

    let token = store::new_session_token();
    let ctx = AuditContext {
        actor_role: audit::role_name(user.role),
        ..ctx
    };
    store::start_session(&accounts.db, &user, &token, &ctx).await?;
    let cookie = session_cookie(
        token.expose_secret(),
        store::SESSION_TTL_SECS,
        &parts.headers,
    );
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(Me {
            email: user.email,
            role: user.role,
        }),
    )
        .into_response())
}

/// Sign out: ends the session and clears the cookie.
#[utoipa::path(post, path = "/logout", tag = TAG,
    responses((status = 204, description = "Signed out")))]
async fn logout(
    State(accounts): State<Accounts>,
    ctx: AuditContext,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = session_token(&headers) {
        store::end_session(&accounts.db, &token, &ctx).await?;
    }
    // Always clear the cookie, even for a session that had already ended.
    let cleared = session_cookie("", 0, &headers);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cleared)]).into_response())
}

/// Who is signed in.
#[utoipa::path(get, path = "/me", tag = TAG,
    responses((status = 200, description = "The caller", body = Me)))]
async fn me(user: AuthUser) -> Json<Me> {
    Json(Me {
        email: user.email,
        role: user.role,
    })
}

fn client_addr(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ClientAddr>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.to_string())
}

fn session_cookie(value: &str, max_age: i64, request: &HeaderMap) -> HeaderValue {
    // TLS ends at the reverse proxy; it tells us the original scheme.
    let https = request
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let secure = if https { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    );
    // The token is URL-safe base64, so the header value is always valid.
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The session token from the request's `Cookie` header(s), if any.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}
