//! Credentials at rest: AES-256-GCM under an operator-held master key.
//!
//! Every ciphertext is a self-describing envelope `v1:<key id>:<base64url(nonce ‖ ct ‖ tag)>`.
//! The key id lets decryption pick the right key of the [`Keyring`] (one active key, plus old
//! keys kept for decryption while `socmate keys rotate` re-encrypts under the active one);
//! a fresh random 96-bit nonce per encryption keeps replicas from ever colliding; the AAD
//! binds each ciphertext to the row and field it belongs to, so a ciphertext copied into
//! another row fails to authenticate instead of lending that row someone else's secret.

mod key_check;
mod keyring;
mod master_key;
pub mod rotation;

use aws_lc_rs::aead::{self, AES_256_GCM, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;

pub use key_check::{KeyCheckError, ensure_keys_in_use_are_loaded, load_verified_keyring};
pub use keyring::{Keyring, envelope_key_id};
pub use master_key::{KEY_FILE_NAME, KeySource, MasterKey, MasterKeyError};

const ENVELOPE_VERSION: &str = "v1";
const TAG_LEN: usize = 16;

/// Fills `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) {
    // aws-lc's RNG only fails if the OS entropy source is gone, in which case no secret
    // can be generated safely and stopping is the only sound answer.
    if aws_lc_rs::rand::fill(buf).is_err() {
        panic!("the operating system's random number generator is unavailable");
    }
}

/// What a ciphertext is bound to: the table, row and field it was written for.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub table: &'a str,
    pub field: &'a str,
    pub row_id: &'a str,
}

impl Binding<'_> {
    fn aad(&self) -> String {
        format!("socmate/{}/{}/{}", self.table, self.field, self.row_id)
    }
}

/// Where a provider's client secret lives; shared by the provider service and key rotation.
pub fn provider_secret_binding(provider_id: &str) -> Binding<'_> {
    Binding {
        table: "siem_providers",
        field: "client_secret",
        row_id: provider_id,
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("ciphertext is not a socmate v1 envelope")]
    Malformed,
    #[error("ciphertext was written under key id {0}, which is not loaded")]
    UnknownKeyId(String),
    #[error("ciphertext failed to authenticate (tampered, moved to another row, or wrong key)")]
    Unauthentic,
    #[error("decrypted value is not valid UTF-8")]
    NotUtf8,
}

/// Encrypts and decrypts secrets with the active master key.
pub struct Cipher {
    key_id: String,
    key: LessSafeKey,
}

impl Cipher {
    pub fn new(master: &MasterKey) -> Self {
        let key = UnboundKey::new(&AES_256_GCM, master.expose_bytes())
            .map(LessSafeKey::new)
            // A MasterKey is exactly 32 bytes by construction, which AES-256 always accepts.
            .unwrap_or_else(|_| unreachable!("a MasterKey always holds 32 bytes"));
        Self {
            key_id: master.id().to_owned(),
            key,
        }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn encrypt(&self, plaintext: &[u8], binding: Binding<'_>) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        let mut sealed = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plaintext);
        let aad = binding.aad();
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(aad.as_bytes()),
                &mut sealed[NONCE_LEN..],
            )
            // Sealing only fails for inputs beyond AES-GCM's 64 GiB limit.
            .unwrap_or_else(|_| unreachable!("secrets are far below the AES-GCM size limit"));
        sealed.extend_from_slice(tag.as_ref());
        format!(
            "{ENVELOPE_VERSION}:{}:{}",
            self.key_id,
            URL_SAFE_NO_PAD.encode(sealed)
        )
    }

    pub fn decrypt(&self, envelope: &str, binding: Binding<'_>) -> Result<Vec<u8>, CryptoError> {
        let mut parts = envelope.splitn(3, ':');
        let (Some(ENVELOPE_VERSION), Some(key_id), Some(body)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(CryptoError::Malformed);
        };
        if key_id != self.key_id {
            return Err(CryptoError::UnknownKeyId(key_id.to_owned()));
        }
        let mut sealed = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| CryptoError::Malformed)?;
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Malformed);
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[..NONCE_LEN])
            .map_err(|_| CryptoError::Malformed)?;
        let aad = binding.aad();
        let plaintext = self
            .key
            .open_in_place(
                nonce,
                aead::Aad::from(aad.as_bytes()),
                &mut sealed[NONCE_LEN..],
            )
            .map_err(|_| CryptoError::Unauthentic)?;
        Ok(plaintext.to_vec())
    }

    pub fn encrypt_secret(&self, secret: &SecretString, binding: Binding<'_>) -> String {
        use secrecy::ExposeSecret;
        self.encrypt(secret.expose_secret().as_bytes(), binding)
    }

    pub fn decrypt_secret(
        &self,
        envelope: &str,
        binding: Binding<'_>,
    ) -> Result<SecretString, CryptoError> {
        let bytes = self.decrypt(envelope, binding)?;
        String::from_utf8(bytes)
            .map(SecretString::from)
            .map_err(|_| CryptoError::NotUtf8)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn cipher(byte: u8) -> Cipher {
        Cipher::new(&MasterKey::from_bytes([byte; 32]))
    }

    const ROW_A: Binding<'static> = Binding {
        table: "siem_providers",
        field: "client_secret",
        row_id: "aaaaaaaaaaaaaaaaaaaaaaaa",
    };

    #[test]
    fn round_trips_and_carries_the_key_id() {
        let c = cipher(7);
        let env = c.encrypt(b"s3cret value", ROW_A);
        assert!(env.starts_with(&format!("v1:{}:", c.key_id())));
        assert!(!env.contains("s3cret"));
        assert_eq!(c.decrypt(&env, ROW_A).as_deref(), Ok(&b"s3cret value"[..]));
    }

    #[test]
    fn every_encryption_uses_a_fresh_nonce() {
        let c = cipher(1);
        let envelopes: HashSet<String> = (0..10_000).map(|_| c.encrypt(b"same", ROW_A)).collect();
        assert_eq!(envelopes.len(), 10_000);
    }

    #[test]
    fn a_ciphertext_moved_to_another_row_fails_to_authenticate() {
        let c = cipher(2);
        let env = c.encrypt(b"secret", ROW_A);
        let row_b = Binding {
            row_id: "bbbbbbbbbbbbbbbbbbbbbbbb",
            ..ROW_A
        };
        assert_eq!(c.decrypt(&env, row_b), Err(CryptoError::Unauthentic));
    }

    #[test]
    fn any_flipped_bit_fails_to_authenticate() {
        let c = cipher(3);
        let env = c.encrypt(b"secret", ROW_A);
        let (prefix, body) = env.rsplit_once(':').unwrap_or_default();
        let raw = URL_SAFE_NO_PAD.decode(body).unwrap_or_default();
        for i in 0..raw.len() {
            let mut tampered = raw.clone();
            tampered[i] ^= 0x01;
            let env = format!("{prefix}:{}", URL_SAFE_NO_PAD.encode(tampered));
            assert_eq!(
                c.decrypt(&env, ROW_A),
                Err(CryptoError::Unauthentic),
                "byte {i}"
            );
        }
    }

    #[test]
    fn a_different_key_is_reported_by_id_and_never_yields_garbage() {
        let env = cipher(4).encrypt(b"secret", ROW_A);
        let other = cipher(5);
        assert!(matches!(
            other.decrypt(&env, ROW_A),
            Err(CryptoError::UnknownKeyId(_))
        ));
        // Same id prefix forged onto a ciphertext of another key: still refused.
        let (_, rest) = env.split_at(3);
        let forged = format!(
            "v1:{}{}",
            other.key_id(),
            &rest[rest.find(':').unwrap_or(0)..]
        );
        assert_eq!(other.decrypt(&forged, ROW_A), Err(CryptoError::Unauthentic));
    }

    #[test]
    fn malformed_envelopes_are_rejected() {
        let c = cipher(6);
        for bad in ["", "v1", "v2:abc:def", "v1:x", "plaintext-secret"] {
            assert_eq!(c.decrypt(bad, ROW_A), Err(CryptoError::Malformed), "{bad}");
        }
        let short = format!("v1:{}:AAAA", c.key_id());
        assert_eq!(c.decrypt(&short, ROW_A), Err(CryptoError::Malformed));
    }
}
