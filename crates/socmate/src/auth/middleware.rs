//! Router layers: `authenticate` guards all of `/api`, `require_admin` all of `/api/admin`.
//! Guarding whole routers (not single handlers) makes "forgot the check" impossible for a new
//! route.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

use super::{AuthError, JwtKeys, Role};
use crate::http::ApiError;
use crate::store::Db;

/// The verified caller, placed in request extensions by [`authenticate`].
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub email: String,
    pub role: Role,
}

pub async fn authenticate(
    State(keys): State<Arc<JwtKeys>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .ok_or(ApiError::unauthorized(AuthError::Missing))?;
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
    request.extensions_mut().insert(AuthUser {
        email: claims.email,
        role: claims.role,
    });
    Ok(next.run(request).await)
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
        crate::audit::record(&db, &ctx, "access.denied", None, "denied", Some(&what)).await?;
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
