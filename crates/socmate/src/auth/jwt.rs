//! HS256 tokens with a pinned algorithm and every registered claim checked.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use crate::crypto::fill_random;

pub const JWT_KEY_FILE_NAME: &str = "jwt.key";
const ISSUER: &str = "socmate";
const AUDIENCE: &str = "socmate-api";
const MIN_SECRET_LEN: usize = 32;
/// Clock skew tolerated between replicas, in seconds.
const LEEWAY_SECS: u64 = 30;
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// How many verified tokens [`JwtKeys`] remembers.
const VERIFIED_CAP: usize = 4096;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Analyst,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub email: String,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("not authenticated: send 'Authorization: Bearer <token>', or sign in to the console")]
    Missing,
    #[error("the bearer token has expired; issue a new one")]
    Expired,
    #[error("the bearer token is invalid")]
    Invalid,
}

#[derive(Debug, thiserror::Error)]
pub enum JwtKeyError {
    #[error("SOCMATE_JWT_SECRET must be at least {MIN_SECRET_LEN} characters")]
    TooShort,
    #[error("cannot use JWT key file {path}: {reason}")]
    File { path: String, reason: String },
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Tokens that passed every check, by SHA-256 digest (the tokens themselves are not kept), so
    /// that a client sending one token request after request pays a lookup instead of decoding,
    /// parsing and checking it each time. What a token proves changes only with the clock, so a
    /// hit checks its expiry again. Only verified tokens enter, and at most [`VERIFIED_CAP`].
    verified: RwLock<HashMap<[u8; 32], Claims>>,
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtKeys { .. }")
    }
}

impl JwtKeys {
    pub fn from_secret(secret: &[u8]) -> Result<Self, JwtKeyError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(JwtKeyError::TooShort);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            verified: RwLock::default(),
        })
    }

    /// `SOCMATE_JWT_SECRET` if set, else the key file in the data dir (generated on first use).
    pub fn load(from_env: Option<&SecretString>, data_dir: &Path) -> Result<Self, JwtKeyError> {
        if let Some(secret) = from_env {
            return Self::from_secret(secret.expose_secret().as_bytes());
        }
        let path = data_dir.join(JWT_KEY_FILE_NAME);
        let file_error = |reason: String| JwtKeyError::File {
            path: path.display().to_string(),
            reason,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let secret = SecretString::from(text.trim().to_owned());
                Self::from_secret(secret.expose_secret().as_bytes())
                    .map_err(|e| file_error(e.to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                fill_random(&mut bytes);
                let secret = SecretString::from(STANDARD.encode(bytes));
                match crate::private_files::write_new(&path, secret.expose_secret().as_bytes()) {
                    Ok(()) => Self::from_secret(secret.expose_secret().as_bytes()),
                    // Another process (a `token issue` racing `serve`) created it first.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load(None, data_dir)
                    }
                    Err(e) => Err(file_error(e.to_string())),
                }
            }
            Err(e) => Err(file_error(e.to_string())),
        }
    }

    pub fn issue(&self, email: &str, role: Role, ttl: Duration) -> Result<String, AuthError> {
        let now = Utc::now().timestamp();
        let ttl = i64::try_from(ttl.min(MAX_TTL).as_secs()).unwrap_or(i64::MAX);
        let claims = Claims {
            sub: email.to_owned(),
            email: email.to_owned(),
            role,
            iat: now,
            exp: now.saturating_add(ttl),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| AuthError::Invalid)
    }

    /// Checks the signature and claims, and that the token could have been issued here: a
    /// lifetime (`exp - iat`) within [`MAX_TTL`] and an `iat` not in the future beyond the
    /// leeway. The signing key alone must not mint a token that outlives every rotation policy.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut digest = [0u8; 32];
        digest.copy_from_slice(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref(),
        );
        // jsonwebtoken's own rule: expired once `exp` is further past than the leeway.
        let leeway = i64::try_from(LEEWAY_SECS).unwrap_or(0);
        let now = Utc::now().timestamp();
        let expired = |claims: &Claims| claims.exp < now.saturating_sub(leeway);
        if let Some(claims) = self
            .verified
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&digest)
        {
            return if expired(claims) {
                Err(AuthError::Expired)
            } else {
                Ok(claims.clone())
            };
        }
        let claims = self.verify_token(token)?;
        let mut verified = self
            .verified
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if verified.len() >= VERIFIED_CAP {
            verified.retain(|_, claims| !expired(claims));
            if verified.len() >= VERIFIED_CAP {
                verified.clear();
            }
        }
        verified.insert(digest, claims.clone());
        Ok(claims)
    }

    fn verify_token(&self, token: &str) -> Result<Claims, AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })?;
        let max_lifetime = i64::try_from(MAX_TTL.as_secs()).unwrap_or(i64::MAX);
        let leeway = i64::try_from(LEEWAY_SECS).unwrap_or(0);
        let issued_in_future = claims.iat > Utc::now().timestamp().saturating_add(leeway);
        if claims.exp.saturating_sub(claims.iat) > max_lifetime || issued_in_future {
            return Err(AuthError::Invalid);
        }
        Ok(claims)
    }
}

/// Parses a token lifetime such as `8h`, `30m`, `7d`, `90s` or a bare number of seconds.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 8h, 30m, 7d or 90s"))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("'{text}': use a unit of s, m, h or d")),
    };
    let ttl = Duration::from_secs(value.saturating_mul(unit_secs));
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(format!("'{text}': the lifetime must be between 1s and 30d"));
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::from_secret(&[7u8; 32]).unwrap()
    }

    fn forge(claims: &serde_json::Value, alg: Algorithm, secret: &[u8]) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn valid_claims() -> serde_json::Value {
        let now = Utc::now().timestamp();
        serde_json::json!({"sub": "a@x", "email": "a@x", "role": "admin", "iat": now,
            "exp": now + 600, "iss": ISSUER, "aud": AUDIENCE})
    }

    #[test]
    fn issued_tokens_verify() {
        let k = keys();
        let token = k
            .issue("admin@example.com", Role::Admin, Duration::from_secs(60))
            .unwrap();
        let claims = k.verify(&token).unwrap();
        assert_eq!(claims.email, "admin@example.com");
        assert_eq!(claims.role, Role::Admin);
    }

    #[test]
    fn forged_and_malformed_tokens_are_rejected() {
        let k = keys();
        assert!(
            k.verify(&forge(&valid_claims(), Algorithm::HS256, &[7u8; 32]))
                .is_ok()
        );
        let mut cases = vec![
            (
                "wrong key",
                forge(&valid_claims(), Algorithm::HS256, &[8u8; 32]),
            ),
            (
                "HS512",
                forge(&valid_claims(), Algorithm::HS512, &[7u8; 32]),
            ),
            ("garbage", "not.a.token".to_owned()),
        ];
        for (field, value) in [
            ("iss", serde_json::json!("someone-else")),
            ("aud", serde_json::json!("other-api")),
            ("role", serde_json::json!("root")),
            ("nbf", serde_json::json!(Utc::now().timestamp() + 3600)),
            // Signed with the real key, but no server here would have issued these.
            (
                "exp",
                serde_json::json!(Utc::now().timestamp() + 100 * 365 * 86_400),
            ),
            ("iat", serde_json::json!(Utc::now().timestamp() + 3600)),
        ] {
            let mut c = valid_claims();
            c[field] = value;
            cases.push((field, forge(&c, Algorithm::HS256, &[7u8; 32])));
        }
        for missing in ["exp", "iss", "aud", "sub"] {
            let mut c = valid_claims();
            c.as_object_mut().unwrap().remove(missing);
            cases.push((missing, forge(&c, Algorithm::HS256, &[7u8; 32])));
        }
        // alg "none": header and payload with an empty signature.
        let none_header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(valid_claims().to_string());
        cases.push(("alg none", format!("{none_header}.{payload}.")));
        for (what, token) in cases {
            assert_eq!(k.verify(&token).unwrap_err(), AuthError::Invalid, "{what}");
        }
    }

    #[test]
    fn the_longest_lifetime_issued_is_accepted() {
        let mut c = valid_claims();
        let now = Utc::now().timestamp();
        c["exp"] = serde_json::json!(now + i64::try_from(MAX_TTL.as_secs()).unwrap());
        c["iat"] = serde_json::json!(now - 10);
        assert!(
            keys()
                .verify(&forge(&c, Algorithm::HS256, &[7u8; 32]))
                .is_err(),
            "10 s too long"
        );
        c["iat"] = serde_json::json!(now);
        assert!(
            keys()
                .verify(&forge(&c, Algorithm::HS256, &[7u8; 32]))
                .is_ok()
        );
    }

    #[test]
    fn a_remembered_token_still_expires_and_a_tampered_one_is_still_refused() {
        let k = keys();
        let mut c = valid_claims();
        let now = Utc::now().timestamp();
        // Valid for one more second, leeway included.
        c["exp"] = serde_json::json!(now - i64::try_from(LEEWAY_SECS).unwrap() + 1);
        let token = forge(&c, Algorithm::HS256, &[7u8; 32]);
        assert!(k.verify(&token).is_ok());
        assert!(k.verify(&token).is_ok(), "remembered");
        // The same claims under a signature one character off (mid-signature, where every bit
        // counts).
        let at = token.len() - 10;
        let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
        let tampered = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
        assert_eq!(k.verify(&tampered).unwrap_err(), AuthError::Invalid);
        std::thread::sleep(Duration::from_millis(2100));
        assert_eq!(k.verify(&token).unwrap_err(), AuthError::Expired);
    }

    #[test]
    fn at_most_verified_cap_tokens_are_remembered() {
        let k = keys();
        for n in 0..=VERIFIED_CAP {
            let mut c = valid_claims();
            c["sub"] = serde_json::json!(format!("user-{n}@example.com"));
            assert!(k.verify(&forge(&c, Algorithm::HS256, &[7u8; 32])).is_ok());
            let remembered = k.verified.read().unwrap().len();
            assert!(remembered <= VERIFIED_CAP, "{remembered} after {n}");
        }
        // The one past the cap started the memory again with itself.
        assert_eq!(k.verified.read().unwrap().len(), 1);
    }

    #[test]
    fn expired_tokens_say_so() {
        let mut c = valid_claims();
        c["exp"] = serde_json::json!(Utc::now().timestamp() - 3600);
        let token = forge(&c, Algorithm::HS256, &[7u8; 32]);
        assert_eq!(keys().verify(&token).unwrap_err(), AuthError::Expired);
    }

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl("8h").unwrap(), Duration::from_secs(8 * 3600));
        assert_eq!(parse_ttl("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_ttl("7d").unwrap(), Duration::from_secs(7 * 86_400));
        for bad in ["", "0s", "h", "5y", "31d", "-1h"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}
