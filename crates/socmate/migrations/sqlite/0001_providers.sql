-- SIEM providers and the master-key check values.
CREATE TABLE siem_providers (
    id                       TEXT PRIMARY KEY NOT NULL,
    name                     TEXT NOT NULL,
    provider_type            TEXT NOT NULL,
    status                   TEXT NOT NULL,
    workspace_id             TEXT NOT NULL,
    tenant_id                TEXT NOT NULL,
    client_id                TEXT NOT NULL,
    cloud                    TEXT NOT NULL,
    -- v1 envelope, bound by AAD to this row; NULL once the provider is deleted.
    client_secret_ciphertext TEXT,
    client_secret_masked     TEXT NOT NULL,
    is_default               BOOLEAN NOT NULL DEFAULT FALSE,
    last_health_check        TEXT,
    last_health_status       TEXT,
    created_by               TEXT NOT NULL,
    created_at               TEXT NOT NULL,
    updated_at               TEXT NOT NULL,
    deleted_at               TEXT
);

-- Exactly one live default, whatever races the application loses.
CREATE UNIQUE INDEX siem_providers_one_default
    ON siem_providers (is_default) WHERE is_default AND deleted_at IS NULL;

-- Live names are unique; a deleted provider's name is free again.
CREATE UNIQUE INDEX siem_providers_live_name
    ON siem_providers (name) WHERE deleted_at IS NULL;

CREATE TABLE master_key_checks (
    key_id      TEXT PRIMARY KEY NOT NULL,
    check_value TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
