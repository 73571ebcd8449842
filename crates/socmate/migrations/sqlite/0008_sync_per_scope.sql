-- Incident sync per scope (the SIEM-side collection whose ids are unique: for Sentinel through
-- Microsoft Graph, the tenant's Defender XDR feed), not per provider: two providers reading one
-- tenant share one lease, one watermark and one set of incidents.
CREATE TABLE sync_scopes (
    scope              TEXT PRIMARY KEY NOT NULL,
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
    skipped            BIGINT NOT NULL DEFAULT 0,
    last_error_code    TEXT,
    last_error_message TEXT,
    -- JSON array: how the last run read (fallbacks taken, slices split), for the admin.
    notes              TEXT
);

-- The scope each provider reads, as last resolved; providers of one scope share its incidents.
CREATE TABLE provider_scopes (
    provider_id TEXT PRIMARY KEY NOT NULL REFERENCES siem_providers (id),
    scope       TEXT NOT NULL
);
CREATE INDEX provider_scopes_by_scope ON provider_scopes (scope);

INSERT INTO provider_scopes (provider_id, scope)
    SELECT id, 'azure-tenant:' || lower(json_extract(connection, '$.tenant_id'))
    FROM siem_providers WHERE provider_type = 'sentinel';

-- One row per scope: the furthest watermark of the providers that shared it.
INSERT INTO sync_scopes (scope, watermark, watermark_ns, last_started_at, last_finished_at,
                         last_success_at, fetched, created, updated, last_error_code,
                         last_error_message)
    SELECT ps.scope, s.watermark, MAX(s.watermark_ns), s.last_started_at, s.last_finished_at,
           s.last_success_at, s.fetched, s.created, s.updated, s.last_error_code,
           s.last_error_message
    FROM sync_state s JOIN provider_scopes ps ON ps.provider_id = s.provider_id
    GROUP BY ps.scope;

DROP TABLE sync_state;
-- "Which providers saw an incident" is now "which providers read its scope".
DROP TABLE incident_providers;

-- The organisation an incident belongs to (Sentinel: the tenant id), and the products its alerts
-- came from, both filterable.
ALTER TABLE incidents ADD COLUMN tenant_id TEXT;
UPDATE incidents SET tenant_id = lower(json_extract(data, '$.tenant_id'));
CREATE INDEX incidents_by_tenant ON incidents (tenant_id, last_update_ns, id);

CREATE TABLE incident_sources (
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    source      TEXT NOT NULL,
    PRIMARY KEY (source, incident_id)
);
INSERT OR IGNORE INTO incident_sources (incident_id, source)
    SELECT i.id, json_extract(a.data, '$.service_source')
    FROM incidents i JOIN incident_alerts a
      ON a.scope = i.scope AND a.incident_external_id = i.external_id
    WHERE json_extract(a.data, '$.service_source') IS NOT NULL;
