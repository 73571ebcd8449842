-- Local console users (argon2id password hashes), their browser sessions, and the optional
-- expiry date of each provider's client secret.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

-- Only a SHA-256 of each session token is stored: a database dump cannot be replayed as a cookie.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    -- Unix seconds: compared in SQL the same way on both backends.
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

ALTER TABLE siem_providers ADD COLUMN client_secret_expires_at TIMESTAMPTZ;
