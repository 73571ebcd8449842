//! Resource identifiers: 24 lowercase hex characters, ObjectId-like.
//!
//! The first 4 bytes are the creation time in seconds (so ids sort roughly by age, which keeps
//! list order stable and indexes tidy); the other 8 bytes come from the OS CSPRNG, so an id
//! cannot be guessed from another one (64 random bits).

use std::fmt;

use chrono::Utc;

pub const ID_LEN: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId(String);

impl ResourceId {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 12];
        // Seconds since the epoch fit in 4 bytes until 2106.
        let secs = u32::try_from(Utc::now().timestamp()).unwrap_or(u32::MAX);
        bytes[..4].copy_from_slice(&secs.to_be_bytes());
        crate::crypto::fill_random(&mut bytes[4..]);
        Self(hex(&bytes))
    }

    /// Accepts only the canonical form; anything else is "no such resource".
    pub fn parse(raw: &str) -> Option<Self> {
        let canonical = raw.len() == ID_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        canonical.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_canonical_and_distinct() {
        let a = ResourceId::generate();
        let b = ResourceId::generate();
        assert_eq!(a.as_str().len(), ID_LEN);
        assert!(ResourceId::parse(a.as_str()).is_some());
        assert_ne!(a, b);
    }

    #[test]
    fn parse_rejects_non_canonical_ids() {
        for bad in [
            "",
            "6507f1f77bcf86cd799439011",
            "6507F1F77BCF86CD79943901",
            "6507f1f77bcf86cd7994390g",
            "../../etc/passwd/aaaaaaaa",
        ] {
            assert!(ResourceId::parse(bad).is_none(), "{bad:?} accepted");
        }
        assert!(ResourceId::parse("6507f1f77bcf86cd79943901").is_some());
    }
}
