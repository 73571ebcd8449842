//! Start-up proof that the configured keys are the ones the database was written with.
//!
//! Each key gets a key-check value the first time it is seen: a constant encrypted under the key
//! and bound to its id. Every later start must decrypt the value of each configured key that has
//! one, at least one configured key must have one (on a non-empty database), and every key that
//! still encrypts a stored secret must be configured (or declared lost with `socmate keys
//! forget`). Otherwise `serve` refuses to start before
//! opening its port: running on would only turn stored secrets into errors later.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::Utc;

use super::{Binding, Cipher, KeySource, Keyring, MasterKey, MasterKeyError, rotation};
use crate::config::Secrets;
use crate::store::{Db, StoreError, with_db};

const CHECK_PLAINTEXT: &[u8] = b"socmate master key check v1";

#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    #[error(transparent)]
    Key(#[from] MasterKeyError),
    #[error(
        "no master key is configured, but the database holds secrets encrypted under key id(s) \
         {stored}; set SOCMATE_MASTER_KEY to that key or restore {key_file}"
    )]
    Missing { stored: String, key_file: String },
    #[error(
        "the configured master key(s) (key id(s) {configured}) are not the keys this database \
         was encrypted with (key id(s) {stored}); start with the original key"
    )]
    WrongKey { configured: String, stored: String },
    #[error(
        "the key-check value for key id {0} does not authenticate: the key or the database has been altered"
    )]
    CheckFailed(String),
    #[error(
        "key id {key_id} still encrypts {rows} stored secret(s) but is not configured; keep it \
         in SOCMATE_MASTER_KEYS (after the active key) until `socmate keys rotate` reports \
         nothing remaining (if the key is lost for good: `socmate keys forget --key-id {key_id}`, \
         then re-enter those secrets)"
    )]
    KeyInUse { key_id: String, rows: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Finds the keys (SOCMATE_MASTER_KEYS, SOCMATE_MASTER_KEY, the key file, or — on an empty
/// database only — a newly generated key file) and proves them against the database.
pub async fn load_verified_keyring(
    db: &Db,
    secrets: &Secrets,
    data_dir: &Path,
) -> Result<(Keyring, KeySource), KeyCheckError> {
    let stored = stored_checks(db).await?;
    let (keys, source) = match (&secrets.master_keys, &secrets.master_key) {
        (Some(_), Some(_)) => return Err(MasterKeyError::BothSet.into()),
        (Some(list), None) => (MasterKey::parse_list(list)?, KeySource::Environment),
        (None, Some(encoded)) => (
            vec![MasterKey::from_base64(encoded)?],
            KeySource::Environment,
        ),
        (None, None) => match MasterKey::read_file(data_dir)? {
            Some((keys, path)) => (keys, KeySource::File(path)),
            None if stored.is_empty() => {
                let (key, path) = MasterKey::generate_into(data_dir)?;
                (vec![key], KeySource::Generated(path))
            }
            None => {
                return Err(KeyCheckError::Missing {
                    stored: ids(stored.keys()),
                    key_file: data_dir.join(super::KEY_FILE_NAME).display().to_string(),
                });
            }
        },
    };
    let Some(keyring) = Keyring::new(&keys) else {
        return Err(MasterKeyError::InvalidListEntry { position: 1 }.into());
    };

    let configured = keyring.key_ids();
    if !stored.is_empty() && !configured.iter().any(|id| stored.contains_key(*id)) {
        return Err(KeyCheckError::WrongKey {
            configured: configured.join(", "),
            stored: ids(stored.keys()),
        });
    }
    for id in &configured {
        let Some(cipher) = keyring.cipher(id) else {
            continue;
        };
        match stored.get(*id) {
            Some(value) => match cipher.decrypt(value, binding(id)) {
                Ok(plain) if plain == CHECK_PLAINTEXT => {}
                _ => return Err(KeyCheckError::CheckFailed((*id).to_owned())),
            },
            // A key added to the ring: prove it from now on.
            None => record_check(db, cipher).await?,
        }
    }
    Ok((keyring, source))
}

/// Refuses a keyring that lacks a key still encrypting stored secrets (a key dropped too early),
/// unless the operator declared that key lost (`socmate keys forget`).
pub async fn ensure_keys_in_use_are_loaded(
    db: &Db,
    keyring: &Keyring,
) -> Result<(), KeyCheckError> {
    let lost = rotation::forgotten(db).await?;
    for (key_id, rows) in rotation::usage(db).await? {
        if keyring.cipher(&key_id).is_some() {
            continue;
        }
        if !lost.contains(&key_id) {
            return Err(KeyCheckError::KeyInUse { key_id, rows });
        }
        tracing::warn!(
            key_id,
            secrets = rows,
            "stored client secrets are encrypted under a forgotten key; re-enter them (PATCH client_secret)"
        );
    }
    Ok(())
}

fn binding(key_id: &str) -> Binding<'_> {
    Binding {
        table: "master_key_checks",
        field: "check_value",
        row_id: key_id,
    }
}

fn ids<'a>(ids: impl Iterator<Item = &'a String>) -> String {
    ids.map(String::as_str).collect::<Vec<_>>().join(", ")
}

async fn stored_checks(db: &Db) -> Result<BTreeMap<String, String>, StoreError> {
    let sql = "SELECT key_id, check_value FROM master_key_checks";
    let rows: Vec<(String, String)> =
        with_db!(db, |pool| sqlx::query_as(sql).fetch_all(pool).await?);
    Ok(rows.into_iter().collect())
}

async fn record_check(db: &Db, cipher: &Cipher) -> Result<(), StoreError> {
    let value = cipher.encrypt(CHECK_PLAINTEXT, binding(cipher.key_id()));
    let sql = "INSERT INTO master_key_checks (key_id, check_value, created_at) VALUES ($1, $2, $3) \
               ON CONFLICT (key_id) DO NOTHING";
    with_db!(db, |pool| {
        sqlx::query(sql)
            .bind(cipher.key_id())
            .bind(&value)
            .bind(Utc::now())
            .execute(pool)
            .await?;
    });
    Ok(())
}
