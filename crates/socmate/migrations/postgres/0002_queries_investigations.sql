-- Investigations pin the provider that was default when they were opened.
CREATE TABLE investigations (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    title       TEXT NOT NULL,
    description TEXT,
    provider_id TEXT NOT NULL REFERENCES siem_providers (id),
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

-- Every query run through a provider: who, where, what, and how it ended.
CREATE TABLE query_audit (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    actor            TEXT NOT NULL,
    actor_role       TEXT NOT NULL,
    provider_id      TEXT NOT NULL REFERENCES siem_providers (id),
    investigation_id TEXT REFERENCES investigations (id),
    query            TEXT NOT NULL,
    timespan         TEXT NOT NULL,
    status           TEXT NOT NULL,
    error_code       TEXT,
    row_count        BIGINT NOT NULL,
    duration_ms      DOUBLE PRECISION NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX query_audit_by_actor ON query_audit (actor, seq);
