-- Incident sync per scope (the SIEM-side collection whose ids are unique: for Sentinel through
-- Microsoft Graph, the tenant's Defender XDR feed), not per provider: two providers reading one
-- tenant share one lease, one watermark and one set of incidents.
CREATE TABLE sync_scopes (
    scope              TEXT PRIMARY KEY,
    running            BOOLEAN NOT NULL DEFAULT FALSE,
    lease_holder       TEXT,
    lease_generation   BIGINT NOT NULL DEFAULT 0,
    lease_expires_ns   BIGINT NOT NULL DEFAULT 0,
    watermark          TEXT,
    watermark_ns       BIGINT,
    last_started_at    TIMESTAMPTZ,
    last_finished_at   TIMESTAMPTZ,
    last_success_at    TIMESTAMPTZ,
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
    provider_id TEXT PRIMARY KEY REFERENCES siem_providers (id),
    scope       TEXT NOT NULL
);
CREATE INDEX provider_scopes_by_scope ON provider_scopes (scope);

INSERT INTO provider_scopes (provider_id, scope)
    SELECT id, 'azure-tenant:' || lower(connection::json ->> 'tenant_id')
    FROM siem_providers WHERE provider_type = 'sentinel';

-- One row per scope: the furthest watermark of the providers that shared it.
INSERT INTO sync_scopes (scope, watermark, watermark_ns, last_started_at, last_finished_at,
                         last_success_at, fetched, created, updated, last_error_code,
                         last_error_message)
    SELECT DISTINCT ON (ps.scope) ps.scope, s.watermark, s.watermark_ns, s.last_started_at,
           s.last_finished_at, s.last_success_at, s.fetched, s.created, s.updated,
           s.last_error_code, s.last_error_message
    FROM sync_state s JOIN provider_scopes ps ON ps.provider_id = s.provider_id
    ORDER BY ps.scope, s.watermark_ns DESC NULLS LAST;

DROP TABLE sync_state;
-- "Which providers saw an incident" is now "which providers read its scope".
DROP TABLE incident_providers;

-- The organisation an incident belongs to (Sentinel: the tenant id), and the products its alerts
-- came from, both filterable.
ALTER TABLE incidents ADD COLUMN tenant_id TEXT;
UPDATE incidents SET tenant_id = lower(data::json ->> 'tenant_id');
CREATE INDEX incidents_by_tenant ON incidents (tenant_id, last_update_ns, id);

CREATE TABLE incident_sources (
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    source      TEXT NOT NULL,
    PRIMARY KEY (source, incident_id)
);
INSERT INTO incident_sources (incident_id, source)
    SELECT DISTINCT i.id, a.data::json ->> 'service_source'
    FROM incidents i JOIN incident_alerts a
      ON a.scope = i.scope AND a.incident_external_id = i.external_id
    WHERE a.data::json ->> 'service_source' IS NOT NULL
ON CONFLICT DO NOTHING;
