//! Provider management logic, independent of HTTP.

use std::sync::Arc;
use std::time::Duration;

use super::model::{
    ConnectionBody, ConnectionTestResult, HealthStatus, MESSAGE_FAILED, MESSAGE_HEALTHY, Provider,
    ProviderType, UpdateBody,
};
use super::store::{self, NewRow, RowChanges, WriteError};
use super::validate::{self, Connection};
use crate::audit::{self, AuditContext};
use crate::crypto::{Keyring, provider_secret_binding};
use crate::http::FieldError;
use crate::id::ResourceId;
use crate::sentinel::{Sentinel, SentinelCredentials};
use crate::siem::{Check, CheckStatus, ConnectionReport, SiemConnector, millis};
use crate::store::{Db, StoreError};

/// The check reported when a stored secret cannot be decrypted.
pub const CHECK_CREDENTIALS: &str = "credentials";

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("SIEM provider not found")]
    NotFound,
    #[error("a live provider is already named '{0}'")]
    NameTaken(String),
    #[error("a concurrent change to the providers won; retry the request")]
    Contended,
    #[error("the stored client secret of provider {0} cannot be decrypted")]
    CredentialUnreadable(String),
    #[error("too many connection tests; retry in {0:?}")]
    RateLimited(Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<WriteError> for ProviderError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::NotFound => Self::NotFound,
            WriteError::NameTaken(name) => Self::NameTaken(name),
            WriteError::Contended => Self::Contended,
            WriteError::Store(e) => Self::Store(e),
        }
    }
}

#[derive(Clone)]
pub struct Providers {
    pub db: Db,
    pub keyring: Arc<Keyring>,
    pub sentinel: Arc<Sentinel>,
    pub test_budget: Duration,
    /// Signalled when providers are created or changed, so the incident-sync scheduler picks up
    /// a new default at once instead of at its next tick.
    pub changed: Arc<tokio::sync::Notify>,
    /// Connection tests per caller (they call Entra ID with the submitted credentials).
    pub test_limiter: Arc<crate::rate_limit::RateLimiter>,
}

impl Providers {
    /// Tests credentials that are not saved; nothing is stored.
    pub async fn test_credentials(
        &self,
        body: ConnectionBody,
        ctx: &AuditContext,
    ) -> Result<ConnectionTestResult, ProviderError> {
        let connection = self
            .rate_limit(ctx)
            .and_then(|()| validate::connection(body).map_err(ProviderError::Invalid));
        let connection = self
            .audited(ctx, "provider.test_credentials", None, connection)
            .await?;
        let tenant = connection.tenant_id.clone();
        let report = self
            .connector(connection)
            .test_connection(self.test_budget)
            .await;
        let result = result(report);
        // The tenant is recorded, never the secret.
        audit::record(
            &self.db,
            ctx,
            "provider.test_credentials",
            None,
            result.status.as_str(),
            Some(&tenant),
        )
        .await?;
        Ok(result)
    }

    fn rate_limit(&self, ctx: &AuditContext) -> Result<(), ProviderError> {
        self.test_limiter
            .check(&ctx.actor)
            .map_err(ProviderError::RateLimited)
    }

    /// Records a refused or failed action (best effort: the caller already gets the error).
    async fn audited<T>(
        &self,
        ctx: &AuditContext,
        action: &str,
        target: Option<&str>,
        outcome: Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        if let Err(e) = &outcome {
            let code = match e {
                ProviderError::Invalid(_) => "invalid_input",
                ProviderError::NotFound => "not_found",
                ProviderError::NameTaken(_) => "name_taken",
                ProviderError::Contended => "concurrent_change",
                ProviderError::CredentialUnreadable(_) => "credential_unreadable",
                ProviderError::RateLimited(_) => "rate_limited",
                ProviderError::Store(_) => "store_error",
            };
            if let Err(audit_error) =
                audit::record(&self.db, ctx, action, target, "failure", Some(code)).await
            {
                tracing::error!(error = %audit_error, action, "could not audit a failed action");
            }
        }
        outcome
    }

    pub async fn create(
        &self,
        body: ConnectionBody,
        ctx: &AuditContext,
    ) -> Result<Provider, ProviderError> {
        let outcome = self.create_audited(body, ctx).await;
        self.audited(ctx, "provider.create", None, outcome).await
    }

    async fn create_audited(
        &self,
        body: ConnectionBody,
        ctx: &AuditContext,
    ) -> Result<Provider, ProviderError> {
        let created_by = ctx.actor.as_str();
        let new = validate::new_provider(body).map_err(ProviderError::Invalid)?;
        let id = ResourceId::generate();
        let c = &new.connection;
        let ciphertext = self
            .keyring
            .encrypt_secret(&c.client_secret, provider_secret_binding(id.as_str()));
        let masked = validate::mask_secret(&c.client_secret);
        let provider = store::insert(
            &self.db,
            &NewRow {
                id: id.as_str(),
                name: &new.name,
                provider_type: c.provider_type,
                workspace_id: &c.workspace_id,
                tenant_id: &c.tenant_id,
                client_id: &c.client_id,
                cloud: c.cloud,
                client_secret_ciphertext: &ciphertext,
                client_secret_masked: &masked,
                created_by,
                sync_incidents: new.sync_incidents,
                client_secret_expires_at: new.client_secret_expires_at,
            },
            ctx,
        )
        .await?;
        tracing::info!(provider.id = %provider.id, provider.name = %provider.name, is_default = provider.is_default, created_by, "SIEM provider created");
        self.changed.notify_one();
        Ok(provider)
    }

    pub async fn list(&self) -> Result<Vec<Provider>, ProviderError> {
        Ok(store::list_live(&self.db).await?)
    }

    pub async fn get(&self, id: &str) -> Result<Provider, ProviderError> {
        let id = parse_id(id)?;
        store::get_live(&self.db, id.as_str())
            .await?
            .ok_or(ProviderError::NotFound)
    }

    pub async fn update(
        &self,
        id: &str,
        body: UpdateBody,
        ctx: &AuditContext,
    ) -> Result<Provider, ProviderError> {
        let outcome = self.update_audited(id, body, ctx).await;
        self.audited(ctx, "provider.update", Some(id), outcome)
            .await
    }

    async fn update_audited(
        &self,
        id: &str,
        body: UpdateBody,
        ctx: &AuditContext,
    ) -> Result<Provider, ProviderError> {
        let id = parse_id(id)?;
        let changes = validate::changes(body).map_err(ProviderError::Invalid)?;
        let before = store::get_live(&self.db, id.as_str())
            .await?
            .ok_or(ProviderError::NotFound)?;
        let secret = changes.client_secret.as_ref().map(|secret| {
            (
                self.keyring
                    .encrypt_secret(secret, provider_secret_binding(id.as_str())),
                validate::mask_secret(secret),
            )
        });
        let provider = store::update(
            &self.db,
            id.as_str(),
            &RowChanges {
                name: changes.name.as_deref(),
                workspace_id: changes.workspace_id.as_deref(),
                tenant_id: changes.tenant_id.as_deref(),
                client_id: changes.client_id.as_deref(),
                cloud: changes.cloud,
                secret: secret.as_ref().map(|(c, m)| (c.as_str(), m.as_str())),
                sync_incidents: changes.sync_incidents,
                client_secret_expires_at: changes.client_secret_expires_at,
                reset_health: changes.touches_connection(),
                summary: &changes.summary(),
            },
            ctx,
        )
        .await?;
        if changes.touches_connection() {
            self.sentinel
                .forget_credentials(&before.tenant_id, &before.client_id);
        }
        tracing::info!(provider.id = %provider.id, secret_rotated = changes.client_secret.is_some(), "SIEM provider updated");
        self.changed.notify_one();
        Ok(provider)
    }

    pub async fn set_default(
        &self,
        id: &str,
        ctx: &AuditContext,
    ) -> Result<Provider, ProviderError> {
        let outcome = match parse_id(id) {
            Ok(parsed) => store::set_default(&self.db, parsed.as_str(), ctx)
                .await
                .map_err(ProviderError::from),
            Err(e) => Err(e),
        };
        let provider = self
            .audited(ctx, "provider.set_default", Some(id), outcome)
            .await?;
        tracing::info!(provider.id = %provider.id, "SIEM provider set as default");
        self.changed.notify_one();
        Ok(provider)
    }

    /// Soft-deletes a provider; also says whether it was the default (which leaves none).
    pub async fn delete(
        &self,
        id: &str,
        ctx: &AuditContext,
    ) -> Result<(Provider, bool), ProviderError> {
        let outcome = match parse_id(id) {
            Ok(parsed) => store::soft_delete(&self.db, parsed.as_str(), ctx)
                .await
                .map_err(ProviderError::from),
            Err(e) => Err(e),
        };
        let (provider, was_default) = self
            .audited(ctx, "provider.delete", Some(id), outcome)
            .await?;
        self.sentinel
            .forget_credentials(&provider.tenant_id, &provider.client_id);
        tracing::info!(provider.id = %provider.id, was_default, "SIEM provider deleted");
        Ok((provider, was_default))
    }

    /// Tests a saved provider and records the outcome as its health.
    pub async fn test_saved(
        &self,
        id: &str,
        ctx: &AuditContext,
    ) -> Result<ConnectionTestResult, ProviderError> {
        if let Err(e) = self.rate_limit(ctx) {
            return self.audited(ctx, "provider.test", Some(id), Err(e)).await;
        }
        let report = match self.connector_for(id).await {
            Ok((_, connector)) => connector.test_connection(self.test_budget).await,
            Err(ProviderError::CredentialUnreadable(_)) => unreadable_credentials_report(),
            Err(e) => return self.audited(ctx, "provider.test", Some(id), Err(e)).await,
        };
        let result = result(report);
        store::record_health(&self.db, id, result.status, ctx).await?;
        Ok(result)
    }

    /// The live default provider, if an admin has set one.
    pub async fn default_provider(&self) -> Result<Option<Provider>, ProviderError> {
        Ok(store::get_live_default(&self.db).await?)
    }

    /// A ready connection to a saved, live provider.
    pub async fn connector_for(
        &self,
        id: &str,
    ) -> Result<(Provider, Box<dyn SiemConnector>), ProviderError> {
        let id = parse_id(id)?;
        let (provider, ciphertext) = store::get_live_with_secret(&self.db, id.as_str())
            .await?
            .ok_or(ProviderError::NotFound)?;
        let secret = self.keyring.decrypt_secret(&ciphertext, provider_secret_binding(id.as_str())).map_err(|e| {
            tracing::error!(provider.id = %provider.id, error = %e, code = "credential_unreadable", "stored client secret cannot be decrypted");
            ProviderError::CredentialUnreadable(provider.id.clone())
        })?;
        let connector = self.connector(Connection {
            provider_type: provider.provider_type,
            workspace_id: provider.workspace_id.clone(),
            tenant_id: provider.tenant_id.clone(),
            client_id: provider.client_id.clone(),
            client_secret: secret,
            cloud: provider.cloud,
        });
        Ok((provider, connector))
    }

    fn connector(&self, connection: Connection) -> Box<dyn SiemConnector> {
        match connection.provider_type {
            ProviderType::Sentinel => Box::new(self.sentinel.connect(SentinelCredentials {
                tenant_id: connection.tenant_id,
                client_id: connection.client_id,
                client_secret: connection.client_secret,
                workspace_id: connection.workspace_id,
                cloud: connection.cloud,
            })),
        }
    }
}

fn parse_id(raw: &str) -> Result<ResourceId, ProviderError> {
    ResourceId::parse(raw).ok_or(ProviderError::NotFound)
}

fn unreadable_credentials_report() -> ConnectionReport {
    ConnectionReport {
        checks: vec![Check {
            name: CHECK_CREDENTIALS,
            status: CheckStatus::Failed,
            latency_ms: 0.0,
            code: Some("credential_unreadable"),
            hint: Some(
                "The stored client secret cannot be decrypted with the configured master key \
                 (wrong key, or the stored value was altered). Enter the secret again with \
                 PATCH (client_secret) to re-encrypt it."
                    .to_owned(),
            ),
        }],
        latency: Duration::ZERO,
    }
}

fn result(report: ConnectionReport) -> ConnectionTestResult {
    let healthy = report.healthy();
    ConnectionTestResult {
        status: if healthy {
            HealthStatus::Healthy
        } else {
            HealthStatus::Error
        },
        message: if healthy {
            MESSAGE_HEALTHY
        } else {
            MESSAGE_FAILED
        },
        latency_ms: millis(report.latency),
        checks: report.checks,
    }
}
