-- Every statement that changes siem_providers notifies channel `socmate_providers` when its
-- transaction commits, so that each replica serving the providers from memory
-- (providers::cache) drops its copy. A notification, not a counter row: a row that every writer
-- updates would be a lock that health checks and provider writes take in different orders.
CREATE FUNCTION socmate_providers_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('socmate_providers', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER siem_providers_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON siem_providers
    FOR EACH STATEMENT EXECUTE FUNCTION socmate_providers_changed();
