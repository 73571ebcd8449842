//! Re-encrypting stored secrets under the active key (`socmate keys rotate`) and counting which
//! key encrypts what (`socmate keys status`).
//!
//! Rotation works in batches, each committed with its audit row, so it can be interrupted and
//! run again at any time: a row already under the active key is never touched again, and a row
//! is only overwritten if it still holds the ciphertext that was read (a secret rotated through
//! the API meanwhile is newer, and already under the active key).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Keyring, envelope_key_id, provider_secret_binding};
use crate::audit::{AuditContext, audit_row};
use crate::store::{Db, StoreError, in_write_tx, with_db};

/// What one `keys rotate` run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RotationReport {
    /// Secrets re-encrypted under the active key by this run.
    pub rewrapped: u64,
    /// Secrets that could not be decrypted with any loaded key (left as they were).
    pub failed: u64,
    /// Secrets still not under the active key after this run.
    pub remaining: u64,
}

/// How many stored secrets each key id encrypts (unparseable ciphertexts under "malformed").
pub async fn usage(db: &Db) -> Result<BTreeMap<String, u64>, StoreError> {
    let sql = "SELECT client_secret_ciphertext FROM siem_providers WHERE client_secret_ciphertext IS NOT NULL";
    let rows: Vec<(String,)> = with_db!(db, |pool| sqlx::query_as(sql).fetch_all(pool).await?);
    let mut counts = BTreeMap::new();
    for (envelope,) in rows {
        let key = envelope_key_id(&envelope).unwrap_or("malformed").to_owned();
        *counts.entry(key).or_insert(0) += 1;
    }
    Ok(counts)
}

/// Key ids the operator declared lost with `socmate keys forget`.
pub async fn forgotten(db: &Db) -> Result<BTreeSet<String>, StoreError> {
    let rows: Vec<(String,)> = with_db!(db, |pool| sqlx::query_as(
        "SELECT key_id FROM forgotten_keys"
    )
    .fetch_all(pool)
    .await?);
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Declares `key_id` lost: the secrets it encrypts stop blocking start-up and must be re-entered
/// (they answer `credential_unreadable` until then). Returns how many secrets that is.
pub async fn forget(db: &Db, key_id: &str, ctx: &AuditContext) -> Result<u64, StoreError> {
    let secrets = usage(db).await?.get(key_id).copied().unwrap_or(0);
    let detail = format!("{secrets} stored secret(s) must be re-entered");
    in_write_tx!(db, |tx| {
        sqlx::query(
            "INSERT INTO forgotten_keys (key_id, forgotten_at) VALUES ($1, $2) \
             ON CONFLICT (key_id) DO NOTHING",
        )
        .bind(key_id)
        .bind(chrono::Utc::now())
        .execute(&mut *tx)
        .await?;
        audit_row!(
            &mut *tx,
            ctx,
            "keys.forget",
            Some(key_id),
            "success",
            Some(detail.as_str())
        )?;
        Ok::<_, StoreError>(())
    })?;
    Ok(secrets)
}

/// Re-encrypts every stored secret that is not under the active key, `batch_size` rows per
/// transaction. Secrets under forgotten keys are left for an admin to re-enter.
pub async fn rotate(
    db: &Db,
    keyring: &Keyring,
    ctx: &AuditContext,
    batch_size: usize,
) -> Result<RotationReport, StoreError> {
    let active_prefix = format!("v1:{}:", keyring.active_key_id());
    let lost = forgotten(db).await?;
    let mut report = RotationReport::default();
    // Rows are visited in id order once each, so undecryptable rows cannot stall the loop.
    let mut after = String::new();
    loop {
        let sql = "SELECT id, client_secret_ciphertext FROM siem_providers \
                   WHERE client_secret_ciphertext IS NOT NULL AND id > $1 ORDER BY id LIMIT $2";
        let batch: Vec<(String, String)> = with_db!(db, |pool| {
            sqlx::query_as(sql)
                .bind(&after)
                .bind(i64::try_from(batch_size).unwrap_or(i64::MAX))
                .fetch_all(pool)
                .await?
        });
        let Some((last_id, _)) = batch.last() else {
            break;
        };
        after = last_id.clone();

        let mut rewrap = Vec::new();
        for (id, envelope) in batch {
            let under_lost_key = envelope_key_id(&envelope).is_some_and(|k| lost.contains(k));
            if envelope.starts_with(&active_prefix) || under_lost_key {
                continue;
            }
            match keyring.decrypt_secret(&envelope, provider_secret_binding(&id)) {
                Ok(secret) => {
                    let fresh = keyring.encrypt_secret(&secret, provider_secret_binding(&id));
                    rewrap.push((id, envelope, fresh));
                }
                Err(e) => {
                    tracing::warn!(provider_id = %id, error = %e, "cannot re-encrypt a stored secret");
                    report.failed += 1;
                }
            }
        }
        if rewrap.is_empty() {
            continue;
        }
        let detail = format!("re-encrypted under key {}", keyring.active_key_id());
        report.rewrapped += in_write_tx!(db, |tx| {
            let mut done = 0u64;
            for (id, old, fresh) in &rewrap {
                let updated = sqlx::query(
                    "UPDATE siem_providers SET client_secret_ciphertext = $1 \
                     WHERE id = $2 AND client_secret_ciphertext = $3",
                )
                .bind(fresh)
                .bind(id)
                .bind(old)
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() == 1 {
                    audit_row!(
                        &mut *tx,
                        ctx,
                        "keys.rotate",
                        Some(id.as_str()),
                        "success",
                        Some(detail.as_str())
                    )?;
                    done += 1;
                }
            }
            Ok::<_, StoreError>(done)
        })?;
    }
    report.remaining = usage(db)
        .await?
        .into_iter()
        .filter(|(key_id, _)| key_id != keyring.active_key_id())
        .map(|(_, rows)| rows)
        .sum();
    Ok(report)
}

/// `socmate keys status`: every key id configured or in use, and what it encrypts.
#[derive(Debug, Serialize)]
pub struct KeyStatus {
    pub active_key_id: String,
    pub keys: Vec<KeyUsage>,
}

#[derive(Debug, Serialize)]
pub struct KeyUsage {
    pub key_id: String,
    /// `active`, `decrypt-only`, `not configured` (a key still in use must be added back) or
    /// `forgotten` (declared lost: its secrets must be re-entered).
    pub state: &'static str,
    /// Stored secrets encrypted under this key.
    pub secrets: u64,
}

pub async fn status(db: &Db, keyring: &Keyring) -> Result<KeyStatus, StoreError> {
    let mut usage = usage(db).await?;
    let lost = forgotten(db).await?;
    let mut keys: Vec<KeyUsage> = keyring
        .key_ids()
        .into_iter()
        .map(|id| KeyUsage {
            key_id: id.to_owned(),
            state: if id == keyring.active_key_id() {
                "active"
            } else {
                "decrypt-only"
            },
            secrets: usage.remove(id).unwrap_or(0),
        })
        .collect();
    keys.extend(usage.into_iter().map(|(key_id, secrets)| KeyUsage {
        state: if lost.contains(&key_id) {
            "forgotten"
        } else {
            "not configured"
        },
        key_id,
        secrets,
    }));
    Ok(KeyStatus {
        active_key_id: keyring.active_key_id().to_owned(),
        keys,
    })
}
