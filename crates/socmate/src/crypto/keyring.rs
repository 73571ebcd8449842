//! The keyring: one active key that encrypts, and older keys that only decrypt.

use secrecy::SecretString;

use super::{Binding, Cipher, CryptoError, ENVELOPE_VERSION, MasterKey};

pub struct Keyring {
    /// The active key first; each key id at most once.
    ciphers: Vec<Cipher>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

impl Keyring {
    /// `keys[0]` is the active key; repeated keys are kept once. `None` for an empty list.
    pub fn new(keys: &[MasterKey]) -> Option<Self> {
        let mut ciphers: Vec<Cipher> = Vec::with_capacity(keys.len());
        for key in keys {
            if !ciphers.iter().any(|c| c.key_id() == key.id()) {
                ciphers.push(Cipher::new(key));
            }
        }
        (!ciphers.is_empty()).then_some(Self { ciphers })
    }

    pub fn active(&self) -> &Cipher {
        // `new` never builds an empty ring.
        &self.ciphers[0]
    }

    pub fn active_key_id(&self) -> &str {
        self.active().key_id()
    }

    pub fn key_ids(&self) -> Vec<&str> {
        self.ciphers.iter().map(Cipher::key_id).collect()
    }

    pub fn cipher(&self, key_id: &str) -> Option<&Cipher> {
        self.ciphers.iter().find(|c| c.key_id() == key_id)
    }

    /// Encrypts under the active key.
    pub fn encrypt_secret(&self, secret: &SecretString, binding: Binding<'_>) -> String {
        self.active().encrypt_secret(secret, binding)
    }

    /// Decrypts with whichever loaded key the envelope names.
    pub fn decrypt_secret(
        &self,
        envelope: &str,
        binding: Binding<'_>,
    ) -> Result<SecretString, CryptoError> {
        let key_id = envelope_key_id(envelope).ok_or(CryptoError::Malformed)?;
        self.cipher(key_id)
            .ok_or_else(|| CryptoError::UnknownKeyId(key_id.to_owned()))?
            .decrypt_secret(envelope, binding)
    }
}

/// The key id an envelope names, without decrypting it.
pub fn envelope_key_id(envelope: &str) -> Option<&str> {
    let mut parts = envelope.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(ENVELOPE_VERSION), Some(key_id), Some(_)) if !key_id.is_empty() => Some(key_id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    const ROW: Binding<'static> = Binding {
        table: "siem_providers",
        field: "client_secret",
        row_id: "aaaaaaaaaaaaaaaaaaaaaaaa",
    };

    #[test]
    fn encrypts_under_the_active_key_and_decrypts_under_any_loaded_key() {
        let (old, new) = (
            MasterKey::from_bytes([1; 32]),
            MasterKey::from_bytes([2; 32]),
        );
        let before = Keyring::new(&[MasterKey::from_bytes([1; 32])]).unwrap();
        let written_before = before.encrypt_secret(&SecretString::from("s"), ROW);

        let ring = Keyring::new(&[new, old]).unwrap();
        let written_after = ring.encrypt_secret(&SecretString::from("t"), ROW);
        assert_eq!(envelope_key_id(&written_after), Some(ring.active_key_id()));
        assert_ne!(ring.active_key_id(), before.active_key_id());
        assert_eq!(
            ring.decrypt_secret(&written_before, ROW)
                .unwrap()
                .expose_secret(),
            "s"
        );
        assert_eq!(
            ring.decrypt_secret(&written_after, ROW)
                .unwrap()
                .expose_secret(),
            "t"
        );
        // The old ring cannot read what the new active key wrote, and says which key it lacks.
        assert_eq!(
            before.decrypt_secret(&written_after, ROW).unwrap_err(),
            CryptoError::UnknownKeyId(ring.active_key_id().to_owned())
        );
    }

    #[test]
    fn duplicate_keys_are_kept_once_and_empty_rings_are_refused() {
        let ring = Keyring::new(&[
            MasterKey::from_bytes([3; 32]),
            MasterKey::from_bytes([3; 32]),
        ])
        .unwrap();
        assert_eq!(ring.key_ids().len(), 1);
        assert!(Keyring::new(&[]).is_none());
    }
}
