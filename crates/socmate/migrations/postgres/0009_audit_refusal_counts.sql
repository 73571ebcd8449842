-- A refusal repeated by one caller within ten minutes (failed sign-ins, denied admin routes)
-- adds to one row instead of writing a row each time: how many times, and when the last was.
ALTER TABLE audit_log ADD COLUMN count BIGINT NOT NULL DEFAULT 1;
ALTER TABLE audit_log ADD COLUMN last_at TIMESTAMPTZ;
-- Retention pruning deletes by time.
CREATE INDEX audit_log_by_time ON audit_log (at);
