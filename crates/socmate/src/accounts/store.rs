//! Users and browser sessions in the database (shared by every replica).

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use secrecy::{ExposeSecret as _, SecretString};

use crate::audit::{AuditContext, audit_row};
use crate::auth::{AuthUser, Role};
use crate::id::{ResourceId, hex};
use crate::store::{Db, StoreError, in_write_tx, with_db};

/// How long a browser session lasts from sign-in.
pub const SESSION_TTL_SECS: i64 = 12 * 3600;

pub struct StoredUser {
    pub id: String,
    pub email: String,
    pub role: Role,
    pub password_hash: String,
}

fn parse_role(raw: &str) -> Result<Role, StoreError> {
    match raw {
        "admin" => Ok(Role::Admin),
        "analyst" => Ok(Role::Analyst),
        other => Err(StoreError::Corrupt(format!("unknown user role {other:?}"))),
    }
}

/// Emails are compared in NFKC form, case-insensitively: stored and looked up that way, so a
/// full-width or otherwise look-alike spelling finds (and conflicts with) the same user.
pub fn normalize_email(email: &str) -> String {
    use unicode_normalization::UnicodeNormalization as _;
    email.nfkc().collect::<String>().trim().to_lowercase()
}

/// Inserts a user and its `user.add` audit row in one transaction; `Err(UniqueViolation)` when
/// the email is taken.
pub async fn add_user(
    db: &Db,
    email: &str,
    role: Role,
    password_hash: &str,
    ctx: &AuditContext,
) -> Result<String, StoreError> {
    let id = ResourceId::generate().to_string();
    let now = Utc::now();
    let role = crate::audit::role_name(role);
    let sql = "INSERT INTO users (id, email, role, password_hash, created_at, updated_at) \
               VALUES ($1, $2, $3, $4, $5, $5)";
    in_write_tx!(db, |tx| {
        sqlx::query(sql)
            .bind(&id)
            .bind(normalize_email(email))
            .bind(role)
            .bind(password_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        audit_row!(
            &mut *tx,
            ctx,
            "user.add",
            Some(id.as_str()),
            "success",
            Some(role)
        )?;
        Ok::<_, StoreError>(())
    })?;
    Ok(id)
}

pub async fn find_user(db: &Db, email: &str) -> Result<Option<StoredUser>, StoreError> {
    let sql = "SELECT id, email, role, password_hash FROM users WHERE email = $1";
    let row: Option<(String, String, String, String)> = with_db!(db, |pool| {
        sqlx::query_as(sql)
            .bind(normalize_email(email))
            .fetch_optional(pool)
            .await?
    });
    row.map(|(id, email, role, password_hash)| {
        Ok(StoredUser {
            id,
            email,
            role: parse_role(&role)?,
            password_hash,
        })
    })
    .transpose()
}

/// A new random session token (256 bits) for the cookie; the database keeps only its hash.
pub fn new_session_token() -> SecretString {
    let mut bytes = [0u8; 32];
    crate::crypto::fill_random(&mut bytes);
    SecretString::from(URL_SAFE_NO_PAD.encode(bytes))
}

fn token_hash(token: &str) -> String {
    hex(digest::digest(&digest::SHA256, token.as_bytes()).as_ref())
}

/// Stores a session for `user` and its `auth.login` audit row in one transaction, and drops
/// expired sessions on the way.
pub async fn start_session(
    db: &Db,
    user: &StoredUser,
    token: &SecretString,
    ctx: &AuditContext,
) -> Result<(), StoreError> {
    let now = Utc::now();
    let expires = now.timestamp() + SESSION_TTL_SECS;
    let hash = token_hash(token.expose_secret());
    in_write_tx!(db, |tx| {
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now.timestamp())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&hash)
        .bind(&user.id)
        .bind(now)
        .bind(expires)
        .execute(&mut *tx)
        .await?;
        audit_row!(
            &mut *tx,
            ctx,
            "auth.login",
            Some(&user.id),
            "success",
            None::<&str>
        )?;
        Ok::<_, StoreError>(())
    })
}

/// The user a live session token belongs to.
pub async fn session_user(db: &Db, token: &str) -> Result<Option<AuthUser>, StoreError> {
    let sql = "SELECT u.email, u.role FROM sessions s JOIN users u ON u.id = s.user_id \
               WHERE s.token_hash = $1 AND s.expires_at > $2";
    let row: Option<(String, String)> = with_db!(db, |pool| {
        sqlx::query_as(sql)
            .bind(token_hash(token))
            .bind(Utc::now().timestamp())
            .fetch_optional(pool)
            .await?
    });
    row.map(|(email, role)| {
        Ok(AuthUser {
            email,
            role: parse_role(&role)?,
        })
    })
    .transpose()
}

/// Ends a session and records the sign-out in one transaction.
pub async fn end_session(db: &Db, token: &str, ctx: &AuditContext) -> Result<(), StoreError> {
    in_write_tx!(db, |tx| {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash(token))
            .execute(&mut *tx)
            .await?;
        audit_row!(
            &mut *tx,
            ctx,
            "auth.logout",
            None::<&str>,
            "success",
            None::<&str>
        )?;
        Ok::<_, StoreError>(())
    })
}

/// Replaces a user's password and ends their sessions, with a `user.password_reset` audit row,
/// in one transaction. `false` when no user has this email.
pub async fn set_password(
    db: &Db,
    email: &str,
    password_hash: &str,
    ctx: &AuditContext,
) -> Result<bool, StoreError> {
    let email = normalize_email(email);
    in_write_tx!(db, |tx| {
        let user: Option<(String,)> = sqlx::query_as(
            "UPDATE users SET password_hash = $1, updated_at = $2 WHERE email = $3 RETURNING id",
        )
        .bind(password_hash)
        .bind(Utc::now())
        .bind(&email)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((id,)) = user else {
            return Ok(false);
        };
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        audit_row!(
            &mut *tx,
            ctx,
            "user.password_reset",
            Some(id.as_str()),
            "success",
            None::<&str>
        )?;
        Ok::<_, StoreError>(true)
    })
}

/// Removes a user, with a `user.remove` audit row, in one transaction; their sessions go with
/// them (`ON DELETE CASCADE`, enforced on both backends). `false` when no user has this email.
pub async fn remove_user(db: &Db, email: &str, ctx: &AuditContext) -> Result<bool, StoreError> {
    let email = normalize_email(email);
    in_write_tx!(db, |tx| {
        let removed: Option<(String,)> =
            sqlx::query_as("DELETE FROM users WHERE email = $1 RETURNING id")
                .bind(&email)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((id,)) = removed else {
            return Ok(false);
        };
        audit_row!(
            &mut *tx,
            ctx,
            "user.remove",
            Some(id.as_str()),
            "success",
            Some(email.as_str())
        )?;
        Ok::<_, StoreError>(true)
    })
}

/// `(email, role)` of every user, by email.
pub async fn list_users(db: &Db) -> Result<Vec<(String, String)>, StoreError> {
    let sql = "SELECT email, role FROM users ORDER BY email";
    Ok(with_db!(db, |pool| sqlx::query_as(sql)
        .fetch_all(pool)
        .await?))
}
