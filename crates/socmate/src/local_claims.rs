//! What this process is working on now (a scope being synced, a provider being checked), so
//! that it never runs the same one twice at once; the database's leases and schedules keep
//! replicas apart.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct LocalClaims(Arc<Mutex<HashSet<String>>>);

impl LocalClaims {
    /// Claims `name`, unless this process holds it already; the claim ends when dropped.
    pub fn claim(&self, name: &str) -> Option<LocalClaim> {
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        held.insert(name.to_owned()).then(|| LocalClaim {
            claims: self.clone(),
            name: name.to_owned(),
        })
    }
}

/// Ends its claim however the work ends.
pub struct LocalClaim {
    claims: LocalClaims,
    name: String,
}

impl Drop for LocalClaim {
    fn drop(&mut self) {
        self.claims
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_claimed_once_until_its_claim_ends() {
        let claims = LocalClaims::default();
        let first = claims.claim("a");
        assert!(first.is_some());
        assert!(claims.claim("a").is_none());
        assert!(claims.claim("b").is_some());
        drop(first);
        assert!(claims.claim("a").is_some());
    }
}
