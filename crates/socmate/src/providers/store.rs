//! Provider rows. The "one live default" and "unique live name" rules are partial unique
//! indexes; the code here only decides what to do when a racing writer trips one of them.

use chrono::{DateTime, Utc};

use serde_json::{Map, Value};

use super::model::{HealthStatus, Provider, ProviderStatus};
use crate::audit::{AuditContext, audit_row};
use crate::store::{Db, StoreError, in_write_tx, with_db};

/// The columns of [`ProviderRow`], as a macro so queries stay `&'static str` (sqlx refuses
/// dynamically built SQL).
macro_rules! columns {
    () => {
        "id, name, provider_type, status, connection, client_secret_masked, is_default, last_health_check, last_health_status, created_by, \
         created_at, updated_at, sync_incidents, client_secret_expires_at"
    };
}

#[derive(sqlx::FromRow)]
struct ProviderRow {
    id: String,
    name: String,
    provider_type: String,
    status: String,
    /// The provider type's own JSON object.
    connection: String,
    client_secret_masked: String,
    is_default: bool,
    last_health_check: Option<DateTime<Utc>>,
    last_health_status: Option<String>,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    sync_incidents: bool,
    client_secret_expires_at: Option<DateTime<Utc>>,
}

impl TryFrom<ProviderRow> for Provider {
    type Error = StoreError;

    fn try_from(row: ProviderRow) -> Result<Self, StoreError> {
        let corrupt = |column: &str, value: &str| {
            StoreError::Corrupt(format!(
                "siem_providers.{column} of {} holds '{value}'",
                row.id
            ))
        };
        // An expired secret cannot connect, whatever the last check said.
        let expired = row
            .client_secret_expires_at
            .is_some_and(|t| t <= Utc::now());
        let status =
            ProviderStatus::parse(&row.status).ok_or_else(|| corrupt("status", &row.status))?;
        let connection: Map<String, Value> = serde_json::from_str(&row.connection)
            .map_err(|_| corrupt("connection", "a value that is not a JSON object"))?;
        Ok(Provider {
            provider_type: row.provider_type,
            connection,
            status: if expired && status == ProviderStatus::Active {
                ProviderStatus::Error
            } else {
                status
            },
            last_health_status: match row.last_health_status.as_deref() {
                None => None,
                Some(s) => {
                    Some(HealthStatus::parse(s).ok_or_else(|| corrupt("last_health_status", s))?)
                }
            },
            id: row.id,
            name: row.name,
            client_secret_masked: row.client_secret_masked,
            is_default: row.is_default,
            last_health_check: row.last_health_check,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            sync_incidents: row.sync_incidents,
            client_secret_expires_at: row.client_secret_expires_at,
            // Worded by the provider type: see `Providers::present`.
            secret_expiry_warning: None,
        })
    }
}

/// Advisory lock serialising provider writes on PostgreSQL (the rules they protect — one default,
/// unique live names — span rows, and writes are rare enough that one lane costs nothing).
const PROVIDER_WRITES: Option<i64> = Some(0x50C_0001);

const NAME_TAKEN: &str =
    "SELECT id FROM siem_providers WHERE name = $1 AND deleted_at IS NULL AND id <> $2";

/// A provider row ready to insert, secret already encrypted for its id.
pub struct NewRow<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub provider_type: &'a str,
    /// The provider type's connection, as JSON text.
    pub connection: &'a str,
    pub client_secret_ciphertext: &'a str,
    pub client_secret_masked: &'a str,
    pub created_by: &'a str,
    pub sync_incidents: bool,
    pub client_secret_expires_at: Option<DateTime<Utc>>,
}

/// Why a write was refused.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("no live provider has this id")]
    NotFound,
    #[error("a live provider is already named '{0}'")]
    NameTaken(String),
    #[error("a concurrent change won; retry")]
    Contended,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Runs a write transaction, retrying once when a racing writer trips a unique index (on
/// PostgreSQL a statement's snapshot can miss a row committed a moment earlier).
async fn retry_once_on_race<T, F, Fut>(mut attempt: F) -> Result<T, WriteError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, WriteError>>,
{
    match attempt().await {
        Err(WriteError::Store(StoreError::UniqueViolation)) => match attempt().await {
            Err(WriteError::Store(StoreError::UniqueViolation)) => Err(WriteError::Contended),
            other => other,
        },
        other => other,
    }
}

/// Inserts a provider; the first live provider becomes the default.
pub async fn insert(db: &Db, row: &NewRow<'_>, ctx: &AuditContext) -> Result<Provider, WriteError> {
    let now = Utc::now();
    retry_once_on_race(|| async {
        in_write_tx!(db, lock = PROVIDER_WRITES, |tx| {
            let taken: Option<(String,)> = sqlx::query_as(NAME_TAKEN)
                .bind(row.name)
                .bind(row.id)
                .fetch_optional(&mut *tx)
                .await?;
            if taken.is_some() {
                return Err(WriteError::NameTaken(row.name.to_owned()));
            }
            let sql = concat!("INSERT INTO siem_providers (id, name, provider_type, status, connection, \
                 client_secret_ciphertext, client_secret_masked, \
                 is_default, created_by, created_at, updated_at, sync_incidents, client_secret_expires_at) \
                 VALUES ($1, $2, $3, 'active', $4, $5, $6, \
                 NOT EXISTS (SELECT 1 FROM siem_providers WHERE is_default AND deleted_at IS NULL), \
                 $7, $8, $8, $9, $10) RETURNING ", columns!(), "");
            let inserted: ProviderRow = sqlx::query_as(sql)
                .bind(row.id)
                .bind(row.name)
                .bind(row.provider_type)
                .bind(row.connection)
                .bind(row.client_secret_ciphertext)
                .bind(row.client_secret_masked)
                .bind(row.created_by)
                .bind(now)
                .bind(row.sync_incidents)
                .bind(row.client_secret_expires_at)
                .fetch_one(&mut *tx)
                .await?;
            audit_row!(&mut *tx, ctx, "provider.create", Some(row.id), "success", Some(row.name))?;
            Ok::<_, WriteError>(Provider::try_from(inserted)?)
        })
    })
    .await
}

pub async fn list_live(db: &Db) -> Result<Vec<Provider>, StoreError> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM siem_providers WHERE deleted_at IS NULL ORDER BY created_at, id"
    );
    let rows: Vec<ProviderRow> = with_db!(db, |pool| sqlx::query_as(sql).fetch_all(pool).await?);
    rows.into_iter().map(Provider::try_from).collect()
}

pub async fn get_live(db: &Db, id: &str) -> Result<Option<Provider>, StoreError> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM siem_providers WHERE id = $1 AND deleted_at IS NULL"
    );
    let row: Option<ProviderRow> = with_db!(db, |pool| sqlx::query_as(sql)
        .bind(id)
        .fetch_optional(pool)
        .await?);
    row.map(Provider::try_from).transpose()
}

pub async fn get_live_default(db: &Db) -> Result<Option<Provider>, StoreError> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM siem_providers WHERE is_default AND deleted_at IS NULL"
    );
    let row: Option<ProviderRow> =
        with_db!(db, |pool| sqlx::query_as(sql).fetch_optional(pool).await?);
    row.map(Provider::try_from).transpose()
}

/// A live provider with its encrypted secret, for the code paths that must connect.
pub async fn get_live_with_secret(
    db: &Db,
    id: &str,
) -> Result<Option<(Provider, String)>, StoreError> {
    let Some(provider) = get_live(db, id).await? else {
        return Ok(None);
    };
    let sql =
        "SELECT client_secret_ciphertext FROM siem_providers WHERE id = $1 AND deleted_at IS NULL";
    let ciphertext: Option<(Option<String>,)> = with_db!(db, |pool| sqlx::query_as(sql)
        .bind(id)
        .fetch_optional(pool)
        .await?);
    Ok(ciphertext.and_then(|(c,)| c).map(|c| (provider, c)))
}

/// New values for a PATCH. `None` keeps the current value.
pub struct RowChanges<'a> {
    pub name: Option<&'a str>,
    /// The whole new connection, as JSON text.
    pub connection: Option<&'a str>,
    pub secret: Option<(&'a str, &'a str)>,
    pub sync_incidents: Option<bool>,
    /// `Some(None)` clears the date.
    pub client_secret_expires_at: Option<Option<DateTime<Utc>>>,
    /// Changing where or as whom SoCMate connects resets health to never-checked.
    pub reset_health: bool,
    /// The fields changed, for the audit log (names only, never values).
    pub summary: &'a str,
}

pub async fn update(
    db: &Db,
    id: &str,
    changes: &RowChanges<'_>,
    ctx: &AuditContext,
) -> Result<Provider, WriteError> {
    let now = Utc::now();
    retry_once_on_race(|| async {
        in_write_tx!(db, lock = PROVIDER_WRITES, |tx| {
            let live: Option<(String,)> = sqlx::query_as(
                "SELECT id FROM siem_providers WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if live.is_none() {
                return Err(WriteError::NotFound);
            }
            if let Some(name) = changes.name {
                let taken: Option<(String,)> = sqlx::query_as(NAME_TAKEN)
                    .bind(name)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if taken.is_some() {
                    return Err(WriteError::NameTaken(name.to_owned()));
                }
            }
            let (ciphertext, masked) = changes.secret.unzip();
            let sql = concat!(
                "UPDATE siem_providers SET \
                 name = COALESCE($2, name), \
                 connection = COALESCE($3, connection), \
                 client_secret_ciphertext = COALESCE($4, client_secret_ciphertext), \
                 client_secret_masked = COALESCE($5, client_secret_masked), \
                 status = CASE WHEN $6 THEN 'active' ELSE status END, \
                 last_health_check = CASE WHEN $6 THEN NULL ELSE last_health_check END, \
                 last_health_status = CASE WHEN $6 THEN NULL ELSE last_health_status END, \
                 sync_incidents = COALESCE($8, sync_incidents), \
                 client_secret_expires_at = CASE WHEN $9 THEN $10 ELSE client_secret_expires_at END, \
                 updated_at = $7 \
                 WHERE id = $1 AND deleted_at IS NULL RETURNING ",
                columns!(),
                ""
            );
            let row: ProviderRow = sqlx::query_as(sql)
                .bind(id)
                .bind(changes.name)
                .bind(changes.connection)
                .bind(ciphertext)
                .bind(masked)
                .bind(changes.reset_health)
                .bind(now)
                .bind(changes.sync_incidents)
                .bind(changes.client_secret_expires_at.is_some())
                .bind(changes.client_secret_expires_at.flatten())
                .fetch_one(&mut *tx)
                .await?;
            audit_row!(
                &mut *tx,
                ctx,
                "provider.update",
                Some(id),
                "success",
                Some(changes.summary)
            )?;
            Ok::<_, WriteError>(Provider::try_from(row)?)
        })
    })
    .await
}

/// Replaces a live provider's connection with one holding facts its connection learned, if it is
/// still `expected` (an admin's change meanwhile wins). Not an admin action: no audit row, no
/// `updated_at`.
pub async fn replace_connection(
    db: &Db,
    id: &str,
    expected: &Map<String, Value>,
    connection: &Map<String, Value>,
) -> Result<(), StoreError> {
    let text = Value::Object(connection.clone()).to_string();
    in_write_tx!(db, |tx| {
        let current: Option<(String,)> = sqlx::query_as(
            "SELECT connection FROM siem_providers WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let unchanged = current
            .and_then(|(c,)| serde_json::from_str::<Map<String, Value>>(&c).ok())
            .is_some_and(|c| &c == expected);
        if unchanged {
            sqlx::query("UPDATE siem_providers SET connection = $2 WHERE id = $1")
                .bind(id)
                .bind(&text)
                .execute(&mut *tx)
                .await?;
        }
        Ok::<_, StoreError>(())
    })
}

/// `(id, client_secret_expires_at)` of every live provider whose secret has a known expiry.
pub async fn secret_expiries(db: &Db) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
    let sql = "SELECT id, client_secret_expires_at FROM siem_providers \
               WHERE deleted_at IS NULL AND client_secret_expires_at IS NOT NULL";
    Ok(with_db!(db, |pool| sqlx::query_as(sql)
        .fetch_all(pool)
        .await?))
}

/// Makes `id` the one default: the old default is cleared first, in the same transaction, so
/// the unique index never sees two.
pub async fn set_default(db: &Db, id: &str, ctx: &AuditContext) -> Result<Provider, WriteError> {
    let now = Utc::now();
    retry_once_on_race(|| async {
        in_write_tx!(db, lock = PROVIDER_WRITES, |tx| {
            sqlx::query(
                "UPDATE siem_providers SET is_default = FALSE, updated_at = $2 \
                 WHERE is_default AND deleted_at IS NULL AND id <> $1",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let sql = concat!("UPDATE siem_providers SET updated_at = CASE WHEN is_default THEN updated_at ELSE $2 END, \
                 is_default = TRUE WHERE id = $1 AND deleted_at IS NULL RETURNING ", columns!(), "");
            let row: Option<ProviderRow> =
                sqlx::query_as(sql).bind(id).bind(now).fetch_optional(&mut *tx).await?;
            let Some(row) = row else {
                return Err(WriteError::NotFound);
            };
            audit_row!(&mut *tx, ctx, "provider.set_default", Some(id), "success", Some(row.name.as_str()))?;
            Ok(Provider::try_from(row)?)
        })
    })
    .await
}

/// Soft delete: the row stays for audit, its secret is destroyed, and it stops being default.
/// Also returns whether it was the default.
pub async fn soft_delete(
    db: &Db,
    id: &str,
    ctx: &AuditContext,
) -> Result<(Provider, bool), WriteError> {
    let now = Utc::now();
    let sql = concat!(
        "UPDATE siem_providers SET status = 'inactive', is_default = FALSE, \
         client_secret_ciphertext = NULL, deleted_at = $2, updated_at = $2 \
         WHERE id = $1 AND deleted_at IS NULL RETURNING ",
        columns!(),
        ""
    );
    in_write_tx!(db, lock = PROVIDER_WRITES, |tx| {
        let was_default: Option<(bool,)> = sqlx::query_as(
            "SELECT is_default FROM siem_providers WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((was_default,)) = was_default else {
            return Err(WriteError::NotFound);
        };
        let row: ProviderRow = sqlx::query_as(sql)
            .bind(id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        let detail = if was_default { "was the default" } else { "" };
        audit_row!(
            &mut *tx,
            ctx,
            "provider.delete",
            Some(id),
            "success",
            Some(detail)
        )?;
        Ok((Provider::try_from(row)?, was_default))
    })
}
