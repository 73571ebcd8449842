//! Sign-in limits that stop password guessing without letting a stranger lock a user out.
//!
//! OWASP's Authentication Cheat Sheet warns that locking an account after N failures hands
//! every attacker a denial of service against that user. So no limit here is keyed by the
//! account alone:
//!
//! - **Per address**: every attempt from one client address spends from its budget
//!   (`SOCMATE_SIGN_IN_RATE` per minute).
//! - **Per account and address**: failures for one account from one address spend from a
//!   budget of the same size refilled over 15 minutes; once it is spent, that address waits,
//!   even with the right password.
//! - **Per account, slower**: failures for one account from all addresses spend from a budget
//!   of five times that, refilled over an hour. While it is spent the account is under attack,
//!   and only addresses that failed for it recently are refused: the real user, signing in from
//!   an address without recent failures, still gets in with the right password, while a
//!   distributed guesser gets one guess per fresh address per hour.
//!
//! Limits live in each replica's memory, like the other rate limits.

use std::time::Duration;

use crate::rate_limit::RateLimiter;

pub struct SignInLimits {
    per_address: RateLimiter,
    failures_per_account_address: RateLimiter,
    failures_per_account: RateLimiter,
}

impl SignInLimits {
    /// Limits for `per_minute` attempts per address.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_address: RateLimiter::per_minute(per_minute),
            failures_per_account_address: RateLimiter::refilling(
                per_minute,
                Duration::from_secs(15 * 60),
            ),
            failures_per_account: RateLimiter::refilling(
                per_minute.saturating_mul(5),
                Duration::from_secs(3600),
            ),
        }
    }

    /// Whether `address` may try a password for `email` now; else how long to wait. Spends
    /// from the address's budget.
    pub fn admit(&self, email: &str, address: &str) -> Result<(), Duration> {
        self.per_address.check(address)?;
        let pair = pair_key(email, address);
        self.failures_per_account_address.available(&pair)?;
        if let Err(wait) = self.failures_per_account.available(email)
            && !self.failures_per_account_address.is_untouched(&pair)
        {
            return Err(wait);
        }
        Ok(())
    }

    /// Counts a wrong password for `email` from `address`.
    pub fn failed(&self, email: &str, address: &str) {
        self.failures_per_account_address
            .spend(&pair_key(email, address));
        self.failures_per_account.spend(email);
    }
}

fn pair_key(email: &str, address: &str) -> String {
    format!("{address} {email}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guesser_is_stopped_and_the_user_elsewhere_is_not() {
        let limits = SignInLimits::new(3);
        for _ in 0..3 {
            assert!(limits.admit("u@x", "a").is_ok());
            limits.failed("u@x", "a");
        }
        assert!(
            limits.admit("u@x", "a").is_err(),
            "the pair budget is spent"
        );
        assert!(
            limits.admit("u@x", "b").is_ok(),
            "another address still may"
        );
    }

    #[test]
    fn an_account_under_attack_refuses_only_addresses_that_failed_for_it() {
        let limits = SignInLimits::new(3);
        // Fifteen addresses, one failure each: the account-wide budget is spent.
        for n in 0..15 {
            let address = format!("bot{n}");
            assert!(limits.admit("u@x", &address).is_ok());
            limits.failed("u@x", &address);
        }
        assert!(limits.admit("u@x", "bot0").is_err(), "a guesser waits");
        assert!(limits.admit("u@x", "home").is_ok(), "the user still may");
        assert!(
            limits.admit("other@x", "bot0").is_ok(),
            "other accounts are untouched"
        );
    }
}
