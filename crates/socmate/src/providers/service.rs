//! Provider management logic, independent of HTTP.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::cache::{self, Lookup, ProviderCache, Snapshot};
use super::model::{
    ConnectionTestResult, HealthStatus, MESSAGE_FAILED, Provider, secret_expiry_warning,
};
use super::store::{self, NewRow, RowChanges, WriteError};
use super::validate;
use crate::audit::{self, AuditContext};
use crate::crypto::{Keyring, provider_secret_binding};
use crate::http::FieldError;
use crate::id::ResourceId;
use crate::siem::{
    Check, CheckStatus, ConnectionReport, ProviderForm, ProviderKind, Registry, SiemConnector,
    millis,
};
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
    /// A stored provider whose type this SoCMate does not support (any more), or whose stored
    /// connection its type cannot read.
    #[error("provider {id} cannot connect: {reason}")]
    Unsupported { id: String, reason: String },
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
    /// The provider types this SoCMate supports.
    pub registry: Arc<Registry>,
    pub test_budget: Duration,
    /// Signalled when providers are created or changed, so the incident-sync scheduler picks up
    /// a new default at once instead of at its next tick.
    pub changed: Arc<tokio::sync::Notify>,
    /// Connection tests per caller (they call Entra ID with the submitted credentials).
    pub test_limiter: Arc<crate::rate_limit::RateLimiter>,
    /// The live providers ready to serve; every write below drops it once committed.
    pub cache: Arc<ProviderCache>,
}

impl Providers {
    /// Tests credentials that are not saved; nothing is stored.
    pub async fn test_credentials(
        &self,
        body: Map<String, Value>,
        ctx: &AuditContext,
    ) -> Result<ConnectionTestResult, ProviderError> {
        let candidate = self.rate_limit(ctx).and_then(|()| {
            validate::candidate(&self.registry, body).map_err(ProviderError::Invalid)
        });
        let candidate = self
            .audited(ctx, "provider.test_credentials", None, candidate)
            .await?;
        let kind = candidate.kind;
        // Where the credentials point is recorded, never the secret.
        let target = kind.describe(&candidate.connection);
        let connector = kind
            .connect(&candidate.connection, candidate.client_secret)
            .map_err(|reason| ProviderError::Unsupported {
                id: "(unsaved)".into(),
                reason,
            })?;
        let report = connector.test_connection(self.test_budget).await;
        let result = result(kind.healthy_message(), report);
        audit::record(
            &self.db,
            ctx,
            "provider.test_credentials",
            None,
            result.status.as_str(),
            Some(&target),
        )
        .await?;
        Ok(result)
    }

    /// The forms of the provider types this SoCMate supports.
    pub fn forms(&self) -> Vec<ProviderForm> {
        self.registry.kinds().map(|kind| kind.form()).collect()
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
                ProviderError::Unsupported { .. } => "unsupported_provider",
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
        body: Map<String, Value>,
        ctx: &AuditContext,
    ) -> Result<Provider, ProviderError> {
        let outcome = self.create_audited(body, ctx).await;
        self.audited(ctx, "provider.create", None, outcome).await
    }

    async fn create_audited(
        &self,
        body: Map<String, Value>,
        ctx: &AuditContext,
    ) -> Result<Provider, ProviderError> {
        let created_by = ctx.actor.as_str();
        let new = validate::new_provider(&self.registry, body).map_err(ProviderError::Invalid)?;
        let id = ResourceId::generate();
        let candidate = &new.candidate;
        let ciphertext = self.keyring.encrypt_secret(
            &candidate.client_secret,
            provider_secret_binding(id.as_str()),
        );
        let masked = validate::mask_secret(&candidate.client_secret);
        let connection = Value::Object(candidate.connection.clone()).to_string();
        let inserted = store::insert(
            &self.db,
            &NewRow {
                id: id.as_str(),
                name: &new.name,
                provider_type: candidate.kind.provider_type(),
                connection: &connection,
                client_secret_ciphertext: &ciphertext,
                client_secret_masked: &masked,
                created_by,
                sync_incidents: new.sync_incidents,
                client_secret_expires_at: new.client_secret_expires_at,
            },
            ctx,
        )
        .await;
        self.cache.invalidate();
        let provider = inserted?;
        tracing::info!(provider.id = %provider.id, provider.name = %provider.name, is_default = provider.is_default, created_by, "SIEM provider created");
        self.changed.notify_one();
        Ok(self.present(provider, Utc::now()))
    }

    /// The live providers, in creation order.
    pub async fn list(&self) -> Result<Vec<Provider>, ProviderError> {
        Ok(self.snapshot().await?.providers().to_vec())
    }

    /// The list response's body: `{providers, total}`.
    pub async fn list_json(&self) -> Result<Bytes, ProviderError> {
        Ok(self.snapshot().await?.list_json())
    }

    pub async fn get(&self, id: &str) -> Result<Provider, ProviderError> {
        let id = parse_id(id)?;
        let now = Utc::now();
        if let Lookup::Fresh(snapshot) = self.cache.lookup(now) {
            return snapshot
                .provider(id.as_str())
                .cloned()
                .ok_or(ProviderError::NotFound);
        }
        store::get_live(&self.db, id.as_str())
            .await?
            .map(|p| self.present(p, now))
            .ok_or(ProviderError::NotFound)
    }

    /// A detail response's body.
    pub async fn detail_json(&self, id: &str) -> Result<Bytes, ProviderError> {
        let id = parse_id(id)?;
        if let Lookup::Off = self.cache.lookup(Utc::now()) {
            return Ok(cache::to_json(&self.get(id.as_str()).await?)?);
        }
        self.snapshot()
            .await?
            .detail_json(id.as_str())
            .ok_or(ProviderError::NotFound)
    }

    /// The live providers as the cache holds them, or as the database shows them now (kept for
    /// the next read unless something changed meanwhile).
    async fn snapshot(&self) -> Result<Arc<Snapshot>, ProviderError> {
        let now = Utc::now();
        let ticket = match self.cache.lookup(now) {
            Lookup::Fresh(snapshot) => return Ok(snapshot),
            Lookup::Miss(ticket) => Some(ticket),
            Lookup::Off => None,
        };
        let providers = store::list_live(&self.db).await?;
        let providers = providers
            .into_iter()
            .map(|p| self.present(p, now))
            .collect();
        let snapshot = Arc::new(Snapshot::new(providers, now)?);
        if let Some(ticket) = ticket {
            self.cache.offer(ticket, snapshot.clone());
        }
        Ok(snapshot)
    }

    /// Adds what the provider's type words: the secret-expiry warning as of `now`.
    fn present(&self, mut provider: Provider, now: DateTime<Utc>) -> Provider {
        if let (Some(expires_at), Some(kind)) = (
            provider.client_secret_expires_at,
            self.registry.get(&provider.provider_type),
        ) {
            provider.secret_expiry_warning =
                secret_expiry_warning(expires_at, now, kind.secret_help());
        }
        provider
    }

    fn kind_of(&self, provider: &Provider) -> Result<&dyn ProviderKind, ProviderError> {
        self.registry
            .get(&provider.provider_type)
            .map(|kind| kind.as_ref())
            .ok_or_else(|| ProviderError::Unsupported {
                id: provider.id.clone(),
                reason: format!(
                    "provider type '{}' is not supported by this SoCMate",
                    provider.provider_type
                ),
            })
    }

    pub async fn update(
        &self,
        id: &str,
        body: Map<String, Value>,
        ctx: &AuditContext,
    ) -> Result<Provider, ProviderError> {
        let outcome = self.update_audited(id, body, ctx).await;
        self.audited(ctx, "provider.update", Some(id), outcome)
            .await
    }

    async fn update_audited(
        &self,
        id: &str,
        body: Map<String, Value>,
        ctx: &AuditContext,
    ) -> Result<Provider, ProviderError> {
        let id = parse_id(id)?;
        let before = store::get_live(&self.db, id.as_str())
            .await?
            .ok_or(ProviderError::NotFound)?;
        let kind = self.kind_of(&before)?;
        let changes =
            validate::changes(kind, &before.connection, body).map_err(ProviderError::Invalid)?;
        let secret = changes.client_secret.as_ref().map(|secret| {
            (
                self.keyring
                    .encrypt_secret(secret, provider_secret_binding(id.as_str())),
                validate::mask_secret(secret),
            )
        });
        let connection = changes
            .connection
            .as_ref()
            .map(|c| Value::Object(c.clone()).to_string());
        let updated = store::update(
            &self.db,
            id.as_str(),
            &RowChanges {
                name: changes.name.as_deref(),
                connection: connection.as_deref(),
                secret: secret.as_ref().map(|(c, m)| (c.as_str(), m.as_str())),
                sync_incidents: changes.sync_incidents,
                client_secret_expires_at: changes.client_secret_expires_at,
                reset_health: changes.touches_connection(),
                summary: &changes.summary(),
            },
            ctx,
        )
        .await;
        self.cache.invalidate();
        let provider = updated?;
        if changes.touches_connection() {
            kind.forget(&before.connection);
        }
        tracing::info!(provider.id = %provider.id, secret_rotated = changes.client_secret.is_some(), "SIEM provider updated");
        self.changed.notify_one();
        Ok(self.present(provider, Utc::now()))
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
        self.cache.invalidate();
        let provider = self
            .audited(ctx, "provider.set_default", Some(id), outcome)
            .await?;
        tracing::info!(provider.id = %provider.id, "SIEM provider set as default");
        self.changed.notify_one();
        Ok(self.present(provider, Utc::now()))
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
        self.cache.invalidate();
        let (provider, was_default) = self
            .audited(ctx, "provider.delete", Some(id), outcome)
            .await?;
        if let Ok(kind) = self.kind_of(&provider) {
            kind.forget(&provider.connection);
        }
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
        let result = match self.run_check(id).await {
            Ok(result) => result,
            Err(e) => return self.audited(ctx, "provider.test", Some(id), Err(e)).await,
        };
        let recorded = crate::health::store::record(
            &self.db,
            id,
            &result,
            crate::health::store::Source::Manual(ctx),
        )
        .await;
        self.cache.invalidate();
        recorded?;
        Ok(result)
    }

    /// Runs a saved provider's connection test, without recording it.
    pub async fn run_check(&self, id: &str) -> Result<ConnectionTestResult, ProviderError> {
        match self.connector_for(id).await {
            Ok((provider, connector)) => {
                let report = connector.test_connection(self.test_budget).await;
                self.record_learned(&provider, connector.learned()).await?;
                Ok(result(self.kind_of(&provider)?.healthy_message(), report))
            }
            // The report of an unreadable secret fails, so no healthy message is needed.
            Err(ProviderError::CredentialUnreadable(_)) => {
                Ok(result(MESSAGE_FAILED, unreadable_credentials_report()))
            }
            Err(e) => Err(e),
        }
    }

    /// Stores what a connection learned about itself (see [`SiemConnector::learned`]) with the
    /// provider's connection, unless an admin changed the connection meanwhile.
    pub async fn record_learned(
        &self,
        provider: &Provider,
        learned: Map<String, Value>,
    ) -> Result<(), ProviderError> {
        let mut connection = provider.connection.clone();
        connection.extend(learned);
        if connection != provider.connection {
            let replaced = store::replace_connection(
                &self.db,
                &provider.id,
                &provider.connection,
                &connection,
            )
            .await;
            self.cache.invalidate();
            replaced?;
        }
        Ok(())
    }

    /// The live default provider, if an admin has set one.
    pub async fn default_provider(&self) -> Result<Option<Provider>, ProviderError> {
        Ok(store::get_live_default(&self.db)
            .await?
            .map(|p| self.present(p, Utc::now())))
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
        let kind = self.kind_of(&provider)?;
        let connector = kind
            .connect(&provider.connection, secret)
            .map_err(|reason| ProviderError::Unsupported {
                id: provider.id.clone(),
                reason,
            })?;
        Ok((provider, connector))
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

fn result(healthy_message: &'static str, report: ConnectionReport) -> ConnectionTestResult {
    let healthy = report.healthy();
    ConnectionTestResult {
        status: if healthy {
            HealthStatus::Healthy
        } else {
            HealthStatus::Error
        },
        message: if healthy {
            healthy_message
        } else {
            MESSAGE_FAILED
        },
        latency_ms: millis(report.latency),
        checks: report.checks,
    }
}
