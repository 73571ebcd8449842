//! Signed webhook notifications, through an outbox in the database.
//!
//! An event is written in the same transaction as the change it announces ([`event_row!`]), so a
//! change is never announced without happening nor happens unannounced. A delivery loop on every
//! replica claims due events one at a time (a claim is a lease in the row, so one replica sends
//! each), POSTs them to `SOCMATE_NOTIFY_WEBHOOK_URL` signed per the Standard Webhooks
//! specification (<https://www.standardwebhooks.com>): `webhook-id` (stable across retries),
//! `webhook-timestamp` (Unix seconds of the attempt) and `webhook-signature: v1,<base64 of
//! HMAC-SHA256(key, "id.timestamp.body")>`, the key being the base64 part of
//! `SOCMATE_NOTIFY_WEBHOOK_SECRET` (`whsec_<base64>`). A 2xx answer delivers; anything else is
//! retried with exponential backoff (1 s doubling to 10 min) for up to 50 attempts, across
//! restarts. Bodies hold ids, names, states and check codes with their hints — never a secret.

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::siem::incidents::nanos;
use crate::store::{Db, StoreError, with_db};

/// Attempts before an event is given up (its `last_error` stays for the admin).
const MAX_ATTEMPTS: i64 = 50;
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(600);
/// How long a claim keeps other replicas off an event being sent.
const CLAIM: Duration = Duration::from_secs(30);
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the loop looks for due events when none was just sent.
const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum WebhookConfigError {
    #[error(
        "SOCMATE_NOTIFY_WEBHOOK_URL must be an https:// URL (http:// only on a loopback address)"
    )]
    Url,
    #[error("SOCMATE_NOTIFY_WEBHOOK_SECRET must be whsec_ followed by base64 of 24 to 64 bytes")]
    Secret,
    #[error("set SOCMATE_NOTIFY_WEBHOOK_SECRET with SOCMATE_NOTIFY_WEBHOOK_URL")]
    MissingSecret,
}

/// Where events go and the key they are signed with.
pub struct Webhook {
    url: Url,
    key: hmac::Key,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a token of the receiver's: only its origin is shown.
        write!(f, "Webhook({})", self.url.origin().ascii_serialization())
    }
}

impl Webhook {
    /// The webhook from its settings; `None` when no URL is set (events are then still kept in
    /// the outbox, undelivered, so that setting a URL later delivers what happened).
    pub fn from_settings(
        url: Option<&SecretString>,
        secret: Option<&SecretString>,
    ) -> Result<Option<Self>, WebhookConfigError> {
        let Some(url) = url else { return Ok(None) };
        let url = Url::parse(url.expose_secret()).map_err(|_| WebhookConfigError::Url)?;
        let loopback = url.host_str().is_some_and(|h| {
            h == "localhost"
                || h.trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        if !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
            return Err(WebhookConfigError::Url);
        }
        let secret = secret.ok_or(WebhookConfigError::MissingSecret)?;
        let key = secret
            .expose_secret()
            .strip_prefix("whsec_")
            .and_then(|b64| STANDARD.decode(b64).ok())
            .filter(|k| (24..=64).contains(&k.len()))
            .ok_or(WebhookConfigError::Secret)?;
        Ok(Some(Self {
            url,
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
        }))
    }

    /// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
    pub fn signature(&self, id: &str, timestamp: i64, body: &str) -> String {
        let signed = format!("{id}.{timestamp}.{body}");
        let tag = hmac::sign(&self.key, signed.as_bytes());
        format!("v1,{}", STANDARD.encode(tag.as_ref()))
    }
}

/// A new event id (`msg_` and 24 hex characters).
pub fn new_event_id() -> String {
    format!("msg_{}", crate::id::ResourceId::generate())
}

/// An event body in the Standard Webhooks shape: `{"type", "timestamp", "data"}`.
pub fn event_body(event_type: &str, at: DateTime<Utc>, data: serde_json::Value) -> String {
    serde_json::json!({
        "type": event_type,
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "data": data,
    })
    .to_string()
}

/// Inserts an event into the outbox with the executor `$exec` (a transaction, so the event
/// commits with the change it announces). A macro because the executor's type differs per
/// backend.
macro_rules! event_row {
    ($exec:expr, $event_type:expr, $body:expr) => {
        sqlx::query(
            "INSERT INTO notifications (id, event_type, body, created_at, next_attempt_ns) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind($crate::notify::new_event_id())
        .bind($event_type)
        .bind($body)
        .bind(chrono::Utc::now())
        .bind($crate::siem::incidents::nanos(chrono::Utc::now()))
        .execute($exec)
        .await
    };
}
pub(crate) use event_row;

/// Records `mark` once; `true` the first time. Announcements that must happen once (a reminder
/// per expiry threshold) check their mark first.
pub async fn mark_once(db: &Db, mark: &str) -> Result<bool, StoreError> {
    let sql = "INSERT INTO notification_marks (mark, created_at) VALUES ($1, $2) \
               ON CONFLICT (mark) DO NOTHING";
    Ok(with_db!(db, |pool| {
        sqlx::query(sql)
            .bind(mark)
            .bind(Utc::now())
            .execute(pool)
            .await?
            .rows_affected()
            > 0
    }))
}

/// Puts an event in the outbox on its own (for announcements that change nothing else).
pub async fn enqueue(db: &Db, event_type: &str, body: &str) -> Result<(), StoreError> {
    with_db!(db, |pool| {
        event_row!(pool, event_type, body)?;
    });
    Ok(())
}

/// Delivers due events until `stop`.
pub async fn deliver(
    db: Db,
    webhook: Option<Webhook>,
    http: reqwest::Client,
    stop: CancellationToken,
) {
    let Some(webhook) = webhook else { return };
    loop {
        let sent = match claim(&db).await {
            Ok(Some(event)) => {
                send(&db, &webhook, &http, event).await;
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(error = %e, "notifications: cannot read the outbox");
                false
            }
        };
        if !sent {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(POLL) => {}
            }
        } else if stop.is_cancelled() {
            return;
        }
    }
}

struct Claimed {
    id: String,
    body: String,
    attempts: i64,
}

/// Takes the oldest due event for this replica, if any.
async fn claim(db: &Db) -> Result<Option<Claimed>, StoreError> {
    let now = nanos(Utc::now());
    let until = now + i64::try_from(CLAIM.as_nanos()).unwrap_or(i64::MAX);
    let sql = "UPDATE notifications SET claimed_until_ns = $1 WHERE id = (\
                 SELECT id FROM notifications WHERE delivered_at IS NULL AND attempts < $3 \
                 AND next_attempt_ns <= $2 AND claimed_until_ns <= $2 \
                 ORDER BY next_attempt_ns, id LIMIT 1) \
               AND claimed_until_ns <= $2 RETURNING id, body, attempts";
    let row: Option<(String, String, i64)> = with_db!(db, |pool| {
        sqlx::query_as(sql)
            .bind(until)
            .bind(now)
            .bind(MAX_ATTEMPTS)
            .fetch_optional(pool)
            .await?
    });
    Ok(row.map(|(id, body, attempts)| Claimed { id, body, attempts }))
}

async fn send(db: &Db, webhook: &Webhook, http: &reqwest::Client, event: Claimed) {
    let timestamp = Utc::now().timestamp();
    let outcome = http
        .post(webhook.url.clone())
        .timeout(SEND_TIMEOUT)
        .header("content-type", "application/json")
        .header("webhook-id", &event.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            webhook.signature(&event.id, timestamp, &event.body),
        )
        .body(event.body.clone())
        .send()
        .await;
    let failure = match outcome {
        Ok(r) if r.status().is_success() => None,
        Ok(r) => Some(format!("the receiver answered {}", r.status().as_u16())),
        // Without the URL: it may hold the receiver's token.
        Err(e) if e.is_timeout() => Some("the receiver did not answer in time".to_owned()),
        Err(_) => Some("the receiver could not be reached".to_owned()),
    };
    let recorded = match &failure {
        None => {
            metrics::counter!("socmate_notifications_total", "outcome" => "delivered").increment(1);
            with_db!(db, |pool| {
                sqlx::query(
                    "UPDATE notifications SET delivered_at = $2, attempts = attempts + 1, \
                     claimed_until_ns = 0, last_error = NULL WHERE id = $1",
                )
                .bind(&event.id)
                .bind(Utc::now())
                .execute(pool)
                .await
                .map(|_| ())
            })
        }
        Some(reason) => {
            metrics::counter!("socmate_notifications_total", "outcome" => "retried").increment(1);
            let attempt = u32::try_from(event.attempts).unwrap_or(u32::MAX);
            let wait = FIRST_RETRY
                .saturating_mul(2u32.saturating_pow(attempt.min(20)))
                .min(LAST_RETRY);
            tracing::warn!(event.id = %event.id, attempt = event.attempts + 1, reason, "notification not delivered; will retry");
            let next = nanos(Utc::now()) + i64::try_from(wait.as_nanos()).unwrap_or(i64::MAX);
            with_db!(db, |pool| {
                sqlx::query(
                    "UPDATE notifications SET attempts = attempts + 1, next_attempt_ns = $2, \
                     claimed_until_ns = 0, last_error = $3 WHERE id = $1",
                )
                .bind(&event.id)
                .bind(next)
                .bind(reason)
                .execute(pool)
                .await
                .map(|_| ())
            })
        }
    };
    if let Err(e) = recorded {
        tracing::warn!(event.id = %event.id, error = %e, "notifications: cannot record a delivery attempt");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(url: &str, secret: &str) -> Result<Option<Webhook>, WebhookConfigError> {
        Webhook::from_settings(
            Some(&SecretString::from(url.to_owned())),
            Some(&SecretString::from(secret.to_owned())),
        )
    }

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        // The specification's reference vector (standard-webhooks/spec, "Signature scheme").
        let hook = webhook(
            "https://example.com/hook",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            hook.signature(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn urls_and_secrets_are_checked() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        assert!(webhook("http://127.0.0.1:9/x", secret).unwrap().is_some());
        assert!(webhook("http://receiver.example/x", secret).is_err());
        assert!(webhook("https://receiver.example/x", "MfKQ9r8GKYqrTwjU").is_err());
        assert!(webhook("https://receiver.example/x", "whsec_c2hvcnQ=").is_err());
        assert!(
            Webhook::from_settings(
                Some(&SecretString::from("https://r.example".to_owned())),
                None
            )
            .is_err()
        );
        assert!(Webhook::from_settings(None, None).unwrap().is_none());
    }
}
