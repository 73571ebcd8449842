-- A counter that every change to siem_providers bumps, in the changing transaction, so that a
-- process serving the providers from memory (providers::cache) sees what another process
-- sharing this file changed. The triggers catch every writer, present and future.
CREATE TABLE provider_revision (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
);
INSERT INTO provider_revision (id, revision) VALUES (1, 0);

CREATE TRIGGER siem_providers_inserted AFTER INSERT ON siem_providers
BEGIN
    UPDATE provider_revision SET revision = revision + 1 WHERE id = 1;
END;
CREATE TRIGGER siem_providers_updated AFTER UPDATE ON siem_providers
BEGIN
    UPDATE provider_revision SET revision = revision + 1 WHERE id = 1;
END;
CREATE TRIGGER siem_providers_deleted AFTER DELETE ON siem_providers
BEGIN
    UPDATE provider_revision SET revision = revision + 1 WHERE id = 1;
END;
