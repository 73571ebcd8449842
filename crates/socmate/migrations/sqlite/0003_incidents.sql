-- Providers opt in to incident sync (the default provider is always synced).
ALTER TABLE siem_providers ADD COLUMN sync_incidents BOOLEAN NOT NULL DEFAULT FALSE;

-- One row per incident per tenant, whichever providers saw it.
CREATE TABLE incidents (
    id              TEXT PRIMARY KEY NOT NULL,
    tenant_id       TEXT NOT NULL,
    external_id     TEXT NOT NULL,
    status          TEXT,
    severity        TEXT,
    -- Graph's lastUpdateDateTime in nanoseconds since the epoch: orders versions exactly.
    last_update_ns  BIGINT NOT NULL,
    created_ns      BIGINT,
    -- The incident as the API shows it (snake_case, enums as Graph sent them).
    data            TEXT NOT NULL,
    first_synced_at TEXT NOT NULL,
    UNIQUE (tenant_id, external_id)
);
CREATE INDEX incidents_by_update ON incidents (last_update_ns, id);

CREATE TABLE incident_alerts (
    tenant_id            TEXT NOT NULL,
    external_id          TEXT NOT NULL,
    incident_external_id TEXT NOT NULL,
    last_update_ns       BIGINT NOT NULL,
    data                 TEXT NOT NULL,
    PRIMARY KEY (tenant_id, external_id)
);
CREATE INDEX incident_alerts_by_incident ON incident_alerts (tenant_id, incident_external_id);

CREATE TABLE incident_providers (
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    provider_id TEXT NOT NULL REFERENCES siem_providers (id),
    PRIMARY KEY (incident_id, provider_id)
);

-- Sync progress and the lease that lets one replica at a time sync a provider.
CREATE TABLE sync_state (
    provider_id        TEXT PRIMARY KEY NOT NULL REFERENCES siem_providers (id),
    running            BOOLEAN NOT NULL DEFAULT FALSE,
    lease_holder       TEXT,
    lease_generation   BIGINT NOT NULL DEFAULT 0,
    lease_expires_ns   BIGINT NOT NULL DEFAULT 0,
    watermark          TEXT,
    watermark_ns       BIGINT,
    last_started_at    TEXT,
    last_finished_at   TEXT,
    last_success_at    TEXT,
    fetched            BIGINT NOT NULL DEFAULT 0,
    created            BIGINT NOT NULL DEFAULT 0,
    updated            BIGINT NOT NULL DEFAULT 0,
    last_error_code    TEXT,
    last_error_message TEXT
);
