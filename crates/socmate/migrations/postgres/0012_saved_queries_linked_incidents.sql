-- Saved queries: each belongs to the user who saved it; `shared` shows it to every signed-in user
-- (only its owner edits it). One name per owner.
CREATE TABLE saved_queries (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    owner      TEXT NOT NULL,
    name       TEXT NOT NULL,
    query      TEXT NOT NULL,
    timespan   TEXT NOT NULL,
    shared     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (owner, name)
);
CREATE INDEX saved_queries_by_owner ON saved_queries (owner, seq);
CREATE INDEX saved_queries_shared ON saved_queries (shared, seq);

-- Incidents linked to an investigation. No foreign key to incidents: a link outlives an incident
-- row replaced when a scope's aliases merge (incidents::store::adopt_scope), and says so.
CREATE TABLE investigation_incidents (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    investigation_id TEXT NOT NULL REFERENCES investigations (id),
    incident_id      TEXT NOT NULL,
    linked_by        TEXT NOT NULL,
    linked_at        TIMESTAMPTZ NOT NULL,
    UNIQUE (investigation_id, incident_id)
);
CREATE INDEX investigation_incidents_by_incident ON investigation_incidents (incident_id);

-- An investigation's page lists its queries, whoever ran them.
CREATE INDEX query_audit_by_investigation ON query_audit (investigation_id, seq);
