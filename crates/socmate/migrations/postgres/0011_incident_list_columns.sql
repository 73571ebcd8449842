-- What incident lists filter, search and sort on, as columns with an index each, so that a page is
-- one index walk whatever the store holds (docs/benchmarks.md, "Incident lists").
ALTER TABLE incidents ADD COLUMN title TEXT;
-- The title lower-cased (Unicode, by SoCMate; by PostgreSQL's lower() for rows backfilled here) for search.
ALTER TABLE incidents ADD COLUMN title_folded TEXT;
-- Who the incident is assigned to, lower-cased.
ALTER TABLE incidents ADD COLUMN owner TEXT;
-- informational 1, low 2, medium 3, high 4, anything else 0: severity sorts by rank.
ALTER TABLE incidents ADD COLUMN severity_rank BIGINT NOT NULL DEFAULT 0;
UPDATE incidents SET
    title = (data::json ->> 'display_name'),
    title_folded = lower((data::json ->> 'display_name')),
    owner = lower((data::json ->> 'assigned_to')),
    severity_rank = CASE severity WHEN 'informational' THEN 1 WHEN 'low' THEN 2
                    WHEN 'medium' THEN 3 WHEN 'high' THEN 4 ELSE 0 END,
    -- Sorting by creation needs a value on every row: an incident without one sorts as updated.
    created_ns = COALESCE(created_ns, last_update_ns);

CREATE INDEX incidents_by_status ON incidents (status, last_update_ns, id);
CREATE INDEX incidents_by_severity ON incidents (severity, last_update_ns, id);
CREATE INDEX incidents_by_scope ON incidents (scope, last_update_ns, id);
CREATE INDEX incidents_by_owner ON incidents (owner, last_update_ns, id);
CREATE INDEX incidents_by_created ON incidents (created_ns, id);
CREATE INDEX incidents_by_severity_rank ON incidents (severity_rank, last_update_ns, id);

-- A source filter walks the sources in update order, then joins the incident; a page write
-- replaces an incident's sources by its id (the old key, source first, made that a scan).
CREATE TABLE incident_sources_keyed (
    incident_id    TEXT NOT NULL REFERENCES incidents (id),
    source         TEXT NOT NULL,
    last_update_ns BIGINT NOT NULL,
    PRIMARY KEY (incident_id, source)
);
INSERT INTO incident_sources_keyed (incident_id, source, last_update_ns)
    SELECT s.incident_id, s.source, i.last_update_ns
    FROM incident_sources s JOIN incidents i ON i.id = s.incident_id;
DROP TABLE incident_sources;
ALTER TABLE incident_sources_keyed RENAME TO incident_sources;
CREATE INDEX incident_sources_by_update ON incident_sources (source, last_update_ns, incident_id);
