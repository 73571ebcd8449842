-- Every connection check of a provider, scheduled or asked for, kept for the retention period.
CREATE TABLE health_checks (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    provider_id TEXT NOT NULL,
    checked_at  TEXT NOT NULL,
    status      TEXT NOT NULL,
    latency_ms  REAL NOT NULL,
    -- JSON array of the checks: name, status, latency_ms, code, hint (never a secret).
    checks      TEXT NOT NULL,
    source      TEXT NOT NULL
);
CREATE INDEX health_checks_by_provider ON health_checks (provider_id, seq);
CREATE INDEX health_checks_by_time ON health_checks (checked_at);

-- When each provider's next scheduled check is due: the replica that moves it forward runs it.
CREATE TABLE health_schedule (
    provider_id TEXT PRIMARY KEY NOT NULL,
    next_due_ns BIGINT NOT NULL
);

-- The webhook outbox: events are written with the change they announce and delivered, with
-- retries, by whichever replica claims them.
CREATE TABLE notifications (
    id               TEXT PRIMARY KEY NOT NULL,
    event_type       TEXT NOT NULL,
    body             TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_ns  BIGINT NOT NULL,
    claimed_until_ns BIGINT NOT NULL DEFAULT 0,
    delivered_at     TEXT,
    last_error       TEXT
);
CREATE INDEX notifications_due ON notifications (next_attempt_ns) WHERE delivered_at IS NULL;

-- Announcements made once (a secret's expiry reminder per threshold, a sync going stale).
CREATE TABLE notification_marks (
    mark       TEXT PRIMARY KEY NOT NULL,
    created_at TEXT NOT NULL
);
