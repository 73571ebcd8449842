//! Start-up proof that the configured master key is the one the database was written with.
//!
//! The first start stores a key-check value: a constant encrypted under the key and bound to its
//! id. Every later start must decrypt it, or `serve` refuses to start before opening its port:
//! running on with a wrong key would only turn every stored secret into an error later.

use std::path::Path;

use chrono::Utc;
use secrecy::SecretString;

use super::{Binding, Cipher, KeySource, MasterKey, MasterKeyError};
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
        "the configured master key (key id {configured}) is not the key this database was \
         encrypted with (key id(s) {stored}); start with the original key"
    )]
    WrongKey { configured: String, stored: String },
    #[error(
        "the key-check value for key id {0} does not authenticate: the key or the database has been altered"
    )]
    CheckFailed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Finds the master key (environment, then key file, then — on an empty database only — a newly
/// generated key file) and proves it against the database.
pub async fn load_verified_master_key(
    db: &Db,
    from_env: Option<&SecretString>,
    data_dir: &Path,
) -> Result<(MasterKey, KeySource), KeyCheckError> {
    let stored = stored_checks(db).await?;
    let (key, source) = if let Some(encoded) = from_env {
        (MasterKey::from_base64(encoded)?, KeySource::Environment)
    } else if let Some((key, path)) = MasterKey::read_file(data_dir)? {
        (key, KeySource::File(path))
    } else if stored.is_empty() {
        let (key, path) = MasterKey::generate_into(data_dir)?;
        (key, KeySource::Generated(path))
    } else {
        return Err(KeyCheckError::Missing {
            stored: ids(&stored),
            key_file: data_dir.join(super::KEY_FILE_NAME).display().to_string(),
        });
    };

    let cipher = Cipher::new(&key);
    if stored.is_empty() {
        record_check(db, &cipher).await?;
    }
    let stored = stored_checks(db).await?;
    let Some((_, check_value)) = stored.iter().find(|(id, _)| id == key.id()) else {
        return Err(KeyCheckError::WrongKey {
            configured: key.id().to_owned(),
            stored: ids(&stored),
        });
    };
    match cipher.decrypt(check_value, binding(key.id())) {
        Ok(plain) if plain == CHECK_PLAINTEXT => Ok((key, source)),
        _ => Err(KeyCheckError::CheckFailed(key.id().to_owned())),
    }
}

fn binding(key_id: &str) -> Binding<'_> {
    Binding {
        table: "master_key_checks",
        field: "check_value",
        row_id: key_id,
    }
}

fn ids(stored: &[(String, String)]) -> String {
    stored
        .iter()
        .map(|(id, _)| id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn stored_checks(db: &Db) -> Result<Vec<(String, String)>, StoreError> {
    let sql = "SELECT key_id, check_value FROM master_key_checks ORDER BY created_at";
    Ok(with_db!(db, |pool| sqlx::query_as(sql)
        .fetch_all(pool)
        .await?))
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
