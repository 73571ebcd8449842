//! HTTP handlers for `/api/admin/siem-providers`. The admin guard is applied to the whole
//! `/api/admin` router in `app`, not here.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::model::{
    ConnectionBody, ConnectionTestResult, Message, Provider, ProviderList, UpdateBody,
};
use super::service::{ProviderError, Providers};
use crate::audit::AuditContext;
use crate::http::{ApiError, AppJson};
use crate::siem::ProviderForm;

/// Routes and their OpenAPI description, from the same `routes!` lists.
pub fn router() -> OpenApiRouter<Providers> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(test_credentials))
        .routes(routes!(detail, update, delete))
        .routes(routes!(set_default))
        .routes(routes!(test_saved))
}

/// What any signed-in user may know of the providers (mounted at `/api/siem`): the provider
/// types with their forms, and the live providers by name — never a connection detail.
pub fn directory() -> OpenApiRouter<Providers> {
    OpenApiRouter::new()
        .routes(routes!(provider_types))
        .routes(routes!(provider_names))
}

const TAG: &str = "SIEM providers (admin)";
const DIRECTORY_TAG: &str = "Queries and investigations";

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
            ProviderError::Unsupported { id, reason } => {
                tracing::error!(provider.id = %id, %reason, "provider cannot connect");
                ApiError::conflict(
                    "unsupported_provider",
                    format!("{reason}; an admin must delete it or restore its provider type"),
                )
            }
            ProviderError::RateLimited(wait) => ApiError::rate_limited(
                "too many connection tests from this user; wait before testing again",
                wait,
            ),
            ProviderError::Store(e) => e.into(),
        }
    }
}

#[derive(Serialize, ToSchema)]
struct ProviderTypes {
    provider_types: Vec<ProviderForm>,
}

/// The provider types this SoCMate supports, with their forms.
///
/// Each type lists its connection fields (label, where to find the value, whether required, the
/// choices of a select), the checks its connection test runs and its query language; the console
/// builds its forms and query page from this.
#[utoipa::path(get, path = "/provider-types", tag = DIRECTORY_TAG,
    responses((status = 200, description = "The supported provider types", body = ProviderTypes)))]
async fn provider_types(State(providers): State<Providers>) -> axum::Json<ProviderTypes> {
    axum::Json(ProviderTypes {
        provider_types: providers.forms(),
    })
}

#[derive(Serialize, ToSchema)]
struct ProviderName {
    id: String,
    name: String,
    provider_type: String,
    is_default: bool,
}

#[derive(Serialize, ToSchema)]
struct ProviderNames {
    providers: Vec<ProviderName>,
}

/// The live providers by name, default first, for choosing where a query runs.
#[utoipa::path(get, path = "/providers", tag = DIRECTORY_TAG,
    responses((status = 200, description = "Every live provider's id, name and type", body = ProviderNames)))]
async fn provider_names(
    State(providers): State<Providers>,
) -> Result<axum::Json<ProviderNames>, ApiError> {
    let mut names: Vec<ProviderName> = providers
        .list()
        .await?
        .into_iter()
        .map(|p| ProviderName {
            id: p.id,
            name: p.name,
            provider_type: p.provider_type,
            is_default: p.is_default,
        })
        .collect();
    names.sort_by_key(|p| !p.is_default);
    Ok(axum::Json(ProviderNames { providers: names }))
}

/// Test credentials without saving them.
///
/// Runs the provider type's checks (its form lists them) with the submitted credentials; nothing
/// is stored. Rate-limited per caller.
#[utoipa::path(post, path = "/test", tag = TAG, request_body = ConnectionBody,
    responses((status = 200, description = "The checks and their outcome", body = ConnectionTestResult)))]
async fn test_credentials(
    State(providers): State<Providers>,
    ctx: AuditContext,
    AppJson(body): AppJson<Map<String, Value>>,
) -> Result<axum::Json<ConnectionTestResult>, ApiError> {
    Ok(axum::Json(providers.test_credentials(body, &ctx).await?))
}

/// Create a provider.
///
/// The first live provider becomes the default. The secret is encrypted at rest and never
/// returned.
#[utoipa::path(post, path = "", tag = TAG, request_body = ConnectionBody,
    responses((status = 201, description = "Created", body = Provider,
        headers(("Location" = String, description = "The new provider's URL")))))]
async fn create(
    State(providers): State<Providers>,
    ctx: AuditContext,
    AppJson(body): AppJson<Map<String, Value>>,
) -> Result<impl IntoResponse, ApiError> {
    let provider = providers.create(body, &ctx).await?;
    let location = format!("/api/admin/siem-providers/{}", provider.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(provider),
    ))
}

/// List live providers.
#[utoipa::path(get, path = "", tag = TAG,
    responses((status = 200, description = "Every live provider, oldest first", body = ProviderList)))]
async fn list(State(providers): State<Providers>) -> Result<impl IntoResponse, ApiError> {
    Ok(json_body(providers.list_json().await?))
}

/// Get one provider.
#[utoipa::path(get, path = "/{id}", tag = TAG, params(("id" = String, Path, description = "Provider id")),
    responses((status = 200, description = "The provider", body = Provider)))]
async fn detail(
    State(providers): State<Providers>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(json_body(providers.detail_json(&id).await?))
}

/// A JSON body serialised beforehand (the provider cache keeps them ready).
fn json_body(body: Bytes) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
}

/// Change a provider (rename, re-point, rotate the secret).
///
/// Omitted fields keep their value; an omitted `client_secret` keeps the stored one. Changing
/// connection details resets the health status.
#[utoipa::path(patch, path = "/{id}", tag = TAG, params(("id" = String, Path, description = "Provider id")),
    request_body = UpdateBody,
    responses((status = 200, description = "The changed provider", body = Provider)))]
async fn update(
    State(providers): State<Providers>,
    ctx: AuditContext,
    Path(id): Path<String>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> Result<axum::Json<Provider>, ApiError> {
    Ok(axum::Json(providers.update(&id, body, &ctx).await?))
}

/// Make a provider the default.
#[utoipa::path(put, path = "/{id}/default", tag = TAG, params(("id" = String, Path, description = "Provider id")),
    responses((status = 200, description = "Done", body = Message)))]
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

/// Delete a provider (soft delete: hidden, secret erased, name freed).
#[utoipa::path(delete, path = "/{id}", tag = TAG, params(("id" = String, Path, description = "Provider id")),
    responses((status = 200, description = "Deleted", body = Message)))]
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

/// Test a saved provider's connection and record its health.
#[utoipa::path(post, path = "/{id}/test", tag = TAG, params(("id" = String, Path, description = "Provider id")),
    responses((status = 200, description = "The checks and their outcome", body = ConnectionTestResult)))]
async fn test_saved(
    State(providers): State<Providers>,
    ctx: AuditContext,
    Path(id): Path<String>,
) -> Result<axum::Json<ConnectionTestResult>, ApiError> {
    Ok(axum::Json(providers.test_saved(&id, &ctx).await?))
}
