//! Per-caller token buckets. Connection tests call Entra ID with the submitted credentials, so
//! unlimited they would be a credential-guessing oracle and would spend the customer's Entra
//! quota. Limits live in each replica's memory: with N replicas the effective limit is N times
//! the configured one (documented).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    capacity: f64,
    per_second: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// `per_minute` calls per caller, with bursts up to the same number.
    pub fn per_minute(per_minute: u32) -> Self {
        Self::refilling(per_minute, Duration::from_secs(60))
    }

    /// Bursts of `capacity` calls per caller, refilled evenly over `refill`.
    pub fn refilling(capacity: u32, refill: Duration) -> Self {
        let capacity = f64::from(capacity.max(1));
        Self {
            capacity,
            per_second: capacity / refill.as_secs_f64().max(1e-3),
            buckets: Mutex::default(),
        }
    }

    /// Takes one call for `key`, or says how long until one is available.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.with_bucket(key, |tokens| {
            if *tokens >= 1.0 {
                *tokens -= 1.0;
            }
        })
        .map(|_| ())
    }

    /// Whether `key` has a call left, without taking it.
    pub fn available(&self, key: &str) -> Result<(), Duration> {
        self.with_bucket(key, |_| {}).map(|_| ())
    }

    /// Takes one call for `key` if it has one (failures spend; they are never refused).
    pub fn spend(&self, key: &str) {
        let _ = self.check(key);
    }

    /// Whether `key` has spent nothing that is not refilled yet.
    pub fn is_untouched(&self, key: &str) -> bool {
        self.with_bucket(key, |_| {})
            .is_ok_and(|tokens| tokens >= self.capacity)
    }

    /// Refills `key`'s bucket to now and applies `change` to its tokens; `Ok(tokens before the
    /// change)` when a call was available, else how long until one is.
    fn with_bucket(&self, key: &str, change: impl FnOnce(&mut f64)) -> Result<f64, Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        // Keep the map from growing without bound: drop callers whose buckets are full again.
        if buckets.len() > 10_000 {
            let (capacity, rate) = (self.capacity, self.per_second);
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * rate < capacity
            });
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.capacity,
            updated: now,
        });
        bucket.tokens = (bucket.tokens
            + now.duration_since(bucket.updated).as_secs_f64() * self.per_second)
            .min(self.capacity);
        bucket.updated = now;
        let before = bucket.tokens;
        change(&mut bucket.tokens);
        if before >= 1.0 {
            Ok(before)
        } else {
            Err(Duration::from_secs_f64((1.0 - before) / self.per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_gets_its_burst_then_waits_and_others_are_unaffected() {
        let limiter = RateLimiter::per_minute(3);
        for _ in 0..3 {
            assert!(limiter.check("a").is_ok());
        }
        let wait = limiter.check("a").unwrap_err();
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(limiter.check("b").is_ok());
    }

    #[test]
    fn peeking_takes_nothing_and_spending_never_refuses() {
        let limiter = RateLimiter::refilling(2, Duration::from_secs(3600));
        assert!(limiter.is_untouched("a"));
        assert!(limiter.available("a").is_ok());
        limiter.spend("a");
        assert!(!limiter.is_untouched("a"));
        assert!(limiter.available("a").is_ok());
        limiter.spend("a");
        limiter.spend("a");
        assert!(limiter.available("a").is_err());
        assert!(limiter.is_untouched("b"));
    }
}
