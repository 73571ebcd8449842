-- Every admin action and every refused admin request: who, when, what, on what, how it ended.
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    actor_role  TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_id   TEXT,
    outcome     TEXT NOT NULL,
    detail      TEXT,
    request_id  TEXT,
    client_addr TEXT
);
CREATE INDEX audit_log_by_actor ON audit_log (actor, seq);
