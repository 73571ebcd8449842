//! Retrying one SIEM request within a sync run: capped, jittered exponential backoff for
//! transient failures; a `Retry-After` the SIEM sends is honoured in full when it fits before the
//! run's deadline, never cut short (Microsoft Graph `concepts/throttling.md`: "Wait the number of
//! seconds specified in the Retry-After header").

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::FetchError;

pub const MAX_ATTEMPTS: u32 = 5;
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Runs `attempt` until it succeeds, fails for good, runs out of attempts, or the next wait
/// would end after `deadline`.
pub async fn with_retries<T, F, Fut>(deadline: Instant, attempt: F) -> Result<T, FetchError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, FetchError>>,
{
    with_attempts(|_| MAX_ATTEMPTS, deadline, attempt).await
}

/// [`with_retries`] giving up after `attempts(error)` tries for that kind of error (fewer, when a
/// lighter request can be tried instead of insisting).
pub async fn with_attempts<T, F, Fut>(
    attempts: impl Fn(&FetchError) -> u32,
    deadline: Instant,
    mut attempt: F,
) -> Result<T, FetchError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, FetchError>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) if e.is_transient() && tries < attempts(&e) => {
                let wait = e.retry_after().unwrap_or_else(|| backoff(tries));
                if Instant::now() + wait >= deadline {
                    return Err(e);
                }
                tracing::info!(error = %e, attempt = tries, wait_ms = wait.as_millis() as u64, "SIEM request failed; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Full-jitter exponential backoff.
fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1 << attempt.min(10))
        .min(BACKOFF_CAP);
    let mut byte = [0u8; 1];
    crate::crypto::fill_random(&mut byte);
    ceiling
        .mul_f64(f64::from(byte[0]) / 255.0)
        .max(Duration::from_millis(50))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_long_retry_after_is_honoured_when_it_fits_and_refused_when_it_does_not() {
        let calls = std::sync::atomic::AtomicU32::new(0);
        let throttled = || async {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n == 0 {
                Err(FetchError::Throttled {
                    retry_after: Some(Duration::from_secs(90)),
                })
            } else {
                Ok(n)
            }
        };
        let started = Instant::now();
        let got = with_retries(started + Duration::from_secs(600), throttled).await;
        assert_eq!(got.ok(), Some(1));
        assert!(
            started.elapsed() >= Duration::from_secs(90),
            "waited the full 90 s"
        );

        calls.store(0, std::sync::atomic::Ordering::SeqCst);
        let got = with_retries(Instant::now() + Duration::from_secs(60), throttled).await;
        assert!(matches!(got, Err(FetchError::Throttled { .. })));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_are_not_retried() {
        let calls = std::sync::atomic::AtomicU32::new(0);
        let got: Result<(), _> = with_retries(Instant::now() + Duration::from_secs(60), || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(FetchError::Denied {
                code: "missing_permission",
                hint: String::new(),
            })
        })
        .await;
        assert!(got.is_err());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
