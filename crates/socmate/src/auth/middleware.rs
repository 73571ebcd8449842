//! Router layers: `authenticate` guards all of `/api` (but sign-in), `require_admin` all of `/api/admin`.
//! Guarding whole routers (not single handlers) makes "forgot the check" impossible for a new
//! route.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::{AuthError, JwtKeys, Role};
use crate::accounts;
use crate::http::ApiError;
use crate::store::Db;

/// The verified caller, placed in request extensions by [`authenticate`].
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub email: String,
    pub role: Role,
}

/// What [`authenticate`] needs: the JWT keys for bearer tokens, the database for sessions.
#[derive(Clone)]
pub struct AuthState {
    pub keys: Arc<JwtKeys>,
    pub db: Db,
}

/// Accepts a bearer token (API clients) or a console session cookie (browsers). A cookie alone
/// never authorises a state-changing request: it must also carry the CSRF header, which a
/// cross-site form or image cannot set.
pub async fn authenticate(
    State(auth): State<AuthState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let user = match request.headers().get(AUTHORIZATION) {
        Some(header) => bearer_user(&auth.keys, header)?,
        None => session_user(&auth.db, request.headers(), request.method().is_safe()).await?,
    };
    request.extensions_mut().insert(user);
    Ok(next.run(request).await)
}

fn bearer_user(keys: &JwtKeys, header: &HeaderValue) -> Result<AuthUser, ApiError> {
    let token = header
        .to_str()
        .ok()
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|token| !token.is_empty())
        .ok_or(ApiError::unauthorized(AuthError::Invalid))?;
    let claims = keys.verify(token).map_err(ApiError::unauthorized)?;
    Ok(AuthUser {
        email: claims.email,
        role: claims.role,
    })
}

async fn session_user(db: &Db, headers: &HeaderMap, safe: bool) -> Result<AuthUser, ApiError> {
    let token =
        accounts::session_token(headers).ok_or(ApiError::unauthorized(AuthError::Missing))?;
    let has_csrf_header = headers
        .get(accounts::CSRF_HEADER)
        .is_some_and(|v| v.as_bytes() == accounts::CSRF_HEADER_VALUE.as_bytes());
    if !safe && !has_csrf_header {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf_check_failed",
            format!(
                "requests authenticated by the session cookie must send '{}: {}'",
                accounts::CSRF_HEADER,
                accounts::CSRF_HEADER_VALUE
            ),
        ));
    }
    accounts::store::session_user(db, &token)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "session_expired",
                "your session has ended; sign in again",
            )
        })
}

/// Refuses non-admins, and records each refusal in the audit log.
pub async fn require_admin(
    State(db): State<Db>,
    user: AuthUser,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if user.role != Role::Admin {
        tracing::warn!(user.email = %user.email, "admin route refused to non-admin");
        let (parts, _) = request.into_parts();
        let ctx = crate::audit::context_of(&parts, &user);
        // Nesting strips the prefix from `uri`; the original URI is the path the caller used.
        let path = parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map_or_else(|| parts.uri.path().to_owned(), |u| u.path().to_owned());
        let what = format!("{} {path}", parts.method);
        crate::audit::record_refusal(&db, &ctx, "access.denied", "denied", Some(&what)).await?;
        return Err(ApiError::forbidden("this endpoint requires the admin role"));
    }
    Ok(next.run(request).await)
}

impl<S: Send + Sync> FromRequestParts<S> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Present on every route behind `authenticate`; absent means a routing mistake, which
        // must fail closed.
        parts
            .extensions
            .get::<AuthUser>()
            .cloned()
            .ok_or(ApiError::unauthorized(AuthError::Missing))
    }
}
