-- Master keys the operator declared lost (`socmate keys forget`): secrets still encrypted under
-- them no longer stop the server from starting; they must be re-entered.
CREATE TABLE forgotten_keys (
    key_id       TEXT PRIMARY KEY NOT NULL,
    forgotten_at TEXT NOT NULL
);
