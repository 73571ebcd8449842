//! Password hashing: argon2id with the OWASP-recommended parameters (19 MiB, 2 passes, 1 lane),
//! stored in the self-describing PHC string format so parameters can be raised later without a
//! migration.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret as _, SecretString};

pub const MIN_PASSWORD_LEN: usize = 12;
pub const MAX_PASSWORD_LEN: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must be at least {MIN_PASSWORD_LEN} characters")]
    TooShort,
    #[error("the password must be at most {MAX_PASSWORD_LEN} characters")]
    TooLong,
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None)
        // Constant, valid parameters: Params::new only rejects out-of-range values.
        .unwrap_or_else(|_| unreachable!("the argon2 parameters are valid constants"));
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a new password after checking its length (characters, not bytes).
pub fn hash(password: &SecretString) -> Result<String, PasswordError> {
    let length = password.expose_secret().chars().count();
    if length < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort);
    }
    if length > MAX_PASSWORD_LEN {
        return Err(PasswordError::TooLong);
    }
    let mut salt = [0u8; 16];
    crate::crypto::fill_random(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    argon2()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Verified instead of a real hash when the email is unknown (its password is unknowable).
const DECOY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29jbWF0ZWRlY295c2FsdA$\
                     2ZxUT6Mfb2r1qO3ExYx7WwS9l8m6lNvN0bQhd2nM4kA";

/// Checks `password` against a stored hash. With no stored hash (unknown user) it still does the
/// full argon2 work against a fixed hash, so the answer takes as long either way and response
/// times do not reveal which emails have accounts.
pub fn verify(password: &SecretString, stored: Option<&str>) -> bool {
    let candidate = password.expose_secret().as_bytes();
    if candidate.len() > MAX_PASSWORD_LEN * 4 {
        return false;
    }
    let matches = |phc: &str| {
        PasswordHash::new(phc)
            .ok()
            .is_some_and(|parsed| argon2().verify_password(candidate, &parsed).is_ok())
    };
    match stored {
        Some(phc) => matches(phc),
        None => {
            let _ = matches(DECOY);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_per_salt() {
        let pw = SecretString::from("correct horse battery");
        let a = hash(&pw).unwrap();
        let b = hash(&pw).unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b);
        assert!(verify(&pw, Some(&a)));
        assert!(!verify(
            &SecretString::from("correct horse battery!"),
            Some(&a)
        ));
        assert!(!verify(&pw, None));
        assert!(!verify(&pw, Some("not a phc string")));
    }

    #[test]
    fn the_decoy_does_the_same_work_as_a_real_hash() {
        let parsed = PasswordHash::new(DECOY).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert!(parsed.hash.is_some());
    }

    #[test]
    fn length_rules_count_characters() {
        assert!(matches!(
            hash(&SecretString::from("short")),
            Err(PasswordError::TooShort)
        ));
        assert!(hash(&SecretString::from("ünïcödé-pässwörd")).is_ok());
        assert!(matches!(
            hash(&SecretString::from("x".repeat(MAX_PASSWORD_LEN + 1))),
            Err(PasswordError::TooLong)
        ));
    }
}
