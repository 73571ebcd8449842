//! HTTP handlers for `/api/admin/siem-providers`. The admin guard is applied to the whole
//! `/api/admin` router in `app`, not here.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};

use super::model::{
    ConnectionBody, ConnectionTestResult, Message, Provider, ProviderList, UpdateBody,
};
use super::service::{ProviderError, Providers};
use crate::audit::AuditContext;
use crate::http::{ApiError, AppJson};

pub fn router() -> Router<Providers> {
    Router::new()
        .route("/", get(list).post(create))
        .route("/test", post(test_credentials))
        .route("/{id}", get(detail).patch(update).delete(delete))
        .route("/{id}/default", put(set_default))
        .route("/{id}/test", post(test_saved))
}

impl From<ProviderError> for ApiError {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::Invalid(errors) => ApiError::validation(errors),
            ProviderError::NotFound => {
                ApiError::not_found("no SIEM provider with this id (deleted providers are gone)")
            }
            ProviderError::NameTaken(name) => ApiError::conflict(
                "name_taken",
                format!("a SIEM provider named '{name}' already exists; choose another name"),
            ),
            ProviderError::Contended => ApiError::conflict(
                "concurrent_change",
                "another change to the SIEM providers happened at the same moment; retry the request",
            ),
            ProviderError::CredentialUnreadable(_) => ApiError::conflict(
                "credential_unreadable",
                "the provider's stored client secret cannot be decrypted with the configured master key; an admin must enter it again (PATCH client_secret)",
            ),
            ProviderError::RateLimited(wait) => ApiError::rate_limited(
                "too many connection tests from this user; wait before testing again",
                wait,
            ),
            ProviderError::Store(e) => e.into(),
        }
    }
}

async fn test_credentials(
    State(providers): State<Providers>,
    ctx: AuditContext,
    AppJson(body): AppJson<ConnectionBody>,
) -> Result<axum::Json<ConnectionTestResult>, ApiError> {
    Ok(axum::Json(providers.test_credentials(body, &ctx).await?))
}

async fn create(
    State(providers): State<Providers>,
    ctx: AuditContext,
    AppJson(body): AppJson<ConnectionBody>,
) -> Result<impl IntoResponse, ApiError> {
    let provider = providers.create(body, &ctx).await?;
    let location = format!("/api/admin/siem-providers/{}", provider.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(provider),
    ))
}

async fn list(State(providers): State<Providers>) -> Result<axum::Json<ProviderList>, ApiError> {
    let providers = providers.list().await?;
    Ok(axum::Json(ProviderList {
        total: providers.len(),
        providers,
    }))
}

async fn detail(
    State(providers): State<Providers>,
    Path(id): Path<String>,
) -> Result<axum::Json<Provider>, ApiError> {
    Ok(axum::Json(providers.get(&id).await?))
}

async fn update(
    State(providers): State<Providers>,
    ctx: AuditContext,
    Path(id): Path<String>,
    AppJson(body): AppJson<UpdateBody>,
) -> Result<axum::Json<Provider>, ApiError> {
    Ok(axum::Json(providers.update(&id, body, &ctx).await?))
}

async fn set_default(
    State(providers): State<Providers>,
    ctx: AuditContext,
    Path(id): Path<String>,
) -> Result<axum::Json<Message>, ApiError> {
    let provider = providers.set_default(&id, &ctx).await?;
    Ok(axum::Json(Message {
        message: format!("'{}' set as default provider", provider.name),
    }))
}

async fn delete(
    State(providers): State<Providers>,
    ctx: AuditContext,
    Path(id): Path<String>,
) -> Result<axum::Json<Message>, ApiError> {
    let (provider, was_default) = providers.delete(&id, &ctx).await?;
    let note = if was_default {
        "; it was the default provider, so set a new default with PUT /api/admin/siem-providers/{id}/default"
    } else {
        ""
    };
    Ok(axum::Json(Message {
        message: format!("'{}' deleted{note}", provider.name),
    }))
}

async fn test_saved(
    State(providers): State<Providers>,
    ctx: AuditContext,
    Path(id): Path<String>,
) -> Result<axum::Json<ConnectionTestResult>, ApiError> {
    Ok(axum::Json(providers.test_saved(&id, &ctx).await?))
}
