//! The master key: where it comes from, and how it is identified without revealing it.

use std::fmt;
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};

use crate::id::hex;

pub const KEY_FILE_NAME: &str = "master.key";
const KEY_LEN: usize = 32;

/// A 256-bit AES key. `Debug` shows only the key id.
pub struct MasterKey {
    id: String,
    bytes: secrecy::SecretBox<[u8; KEY_LEN]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Where the key in use came from; the server says so in its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Environment,
    File(PathBuf),
    Generated(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error(
        "SOCMATE_MASTER_KEY must be the base64 encoding of exactly 32 bytes \
         (generate one with: openssl rand -base64 32)"
    )]
    InvalidEncoding,
    #[error(
        "SOCMATE_MASTER_KEYS must list base64-encoded 32-byte keys separated by commas, the \
         active key first; entry {position} is not one"
    )]
    InvalidListEntry { position: usize },
    #[error("set SOCMATE_MASTER_KEYS or SOCMATE_MASTER_KEY, not both")]
    BothSet,
    #[error(
        "master key file {path} must hold base64-encoded 32-byte keys, one per line, the active \
         key first"
    )]
    InvalidFile { path: PathBuf },
    #[error("cannot read master key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write master key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        // The id is a truncated hash under a fixed label: stable for a key, and useless for
        // recovering it.
        let mut labelled = b"socmate master key id v1:".to_vec();
        labelled.extend_from_slice(&bytes);
        let id = hex(&digest::digest(&digest::SHA256, &labelled).as_ref()[..8]);
        Self {
            id,
            bytes: secrecy::SecretBox::new(Box::new(bytes)),
        }
    }

    pub fn generate() -> Self {
        let mut bytes = [0u8; KEY_LEN];
        super::fill_random(&mut bytes);
        Self::from_bytes(bytes)
    }

    pub fn from_base64(encoded: &SecretString) -> Result<Self, MasterKeyError> {
        decode(encoded.expose_secret())
            .map(Self::from_bytes)
            .ok_or(MasterKeyError::InvalidEncoding)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub(super) fn expose_bytes(&self) -> &[u8] {
        self.bytes.expose_secret().as_slice()
    }

    pub fn to_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(self.expose_bytes()))
    }

    /// Parses a key list (`SOCMATE_MASTER_KEYS`): base64 keys separated by commas or
    /// whitespace, the active key first. Errors name the position, never the value.
    pub fn parse_list(encoded: &SecretString) -> Result<Vec<Self>, MasterKeyError> {
        let keys = split_list(encoded.expose_secret())
            .enumerate()
            .map(|(i, entry)| {
                decode(entry)
                    .map(Self::from_bytes)
                    .ok_or(MasterKeyError::InvalidListEntry { position: i + 1 })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(MasterKeyError::InvalidListEntry { position: 1 });
        }
        Ok(keys)
    }

    /// Reads the key file in `data_dir` (one key per line, the active key first), if there is one.
    pub fn read_file(data_dir: &Path) -> Result<Option<(Vec<Self>, PathBuf)>, MasterKeyError> {
        let path = data_dir.join(KEY_FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let keys: Option<Vec<Self>> = split_list(&text)
                    .map(|entry| decode(entry).map(Self::from_bytes))
                    .collect();
                match keys {
                    Some(keys) if !keys.is_empty() => Ok(Some((keys, path))),
                    _ => Err(MasterKeyError::InvalidFile { path }),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(MasterKeyError::Read { path, source }),
        }
    }

    /// Generates a key and persists it to `data_dir` with mode 0600. Never overwrites.
    pub fn generate_into(data_dir: &Path) -> Result<(Self, PathBuf), MasterKeyError> {
        let key = Self::generate();
        let path = data_dir.join(KEY_FILE_NAME);
        crate::private_files::write_new(&path, key.to_base64().expose_secret().as_bytes())
            .map_err(|source| MasterKeyError::Write {
                path: path.clone(),
                source,
            })?;
        Ok((key, path))
    }
}

fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|entry| !entry.is_empty())
}

fn decode(text: &str) -> Option<[u8; KEY_LEN]> {
    STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; KEY_LEN]>::try_from(bytes.as_slice()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_are_stable_and_distinct() {
        assert_eq!(
            MasterKey::from_bytes([1; 32]).id(),
            MasterKey::from_bytes([1; 32]).id()
        );
        assert_ne!(
            MasterKey::from_bytes([1; 32]).id(),
            MasterKey::from_bytes([2; 32]).id()
        );
    }

    #[test]
    fn rejects_keys_of_the_wrong_length_without_echoing_them() {
        for bad in ["", "c2hvcnQ=", "not base64 at all!"] {
            let err = MasterKey::from_base64(&SecretString::from(bad)).unwrap_err();
            assert!(!err.to_string().contains(bad) || bad.is_empty());
        }
        let ok = STANDARD.encode([9u8; 32]);
        assert!(MasterKey::from_base64(&SecretString::from(ok)).is_ok());
    }

    #[test]
    fn key_lists_keep_their_order_and_name_a_bad_entry_by_position() {
        let (a, b) = (STANDARD.encode([1u8; 32]), STANDARD.encode([2u8; 32]));
        let keys = MasterKey::parse_list(&SecretString::from(format!(" {b},\n{a} "))).unwrap();
        assert_eq!(keys[0].id(), MasterKey::from_bytes([2; 32]).id());
        assert_eq!(keys[1].id(), MasterKey::from_bytes([1; 32]).id());
        let err = MasterKey::parse_list(&SecretString::from(format!("{a},not-a-key"))).unwrap_err();
        assert!(matches!(
            err,
            MasterKeyError::InvalidListEntry { position: 2 }
        ));
        assert!(!err.to_string().contains(&a));
        assert!(MasterKey::parse_list(&SecretString::from(" , ")).is_err());
    }

    #[test]
    fn debug_output_hides_the_key() {
        let key = MasterKey::from_bytes([0xAB; 32]);
        let shown = format!("{key:?}");
        assert!(shown.contains(key.id()));
        assert!(!shown.contains(&STANDARD.encode([0xAB; 32])));
        assert!(!shown.contains("171"));
    }

    #[cfg(unix)]
    #[test]
    fn generated_key_file_is_private_and_reads_back() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let (key, path) = MasterKey::generate_into(dir.path()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (read, _) = MasterKey::read_file(dir.path()).unwrap().unwrap();
        assert_eq!(read[0].id(), key.id());
        assert!(
            MasterKey::generate_into(dir.path()).is_err(),
            "must not overwrite"
        );
    }
}
