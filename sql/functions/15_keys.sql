-- A change to api_keys (a key revoked, created, deleted or altered) notifies dualreg_keys,
-- so that every daemon drops the keys and unknown tokens it holds in memory at once
-- instead of trusting them for [limits] key_cache_ttl. The payload is the key's id (''
-- for a TRUNCATE); daemons drop their whole cache either way. A revocation of a key
-- already revoked changes nothing and notifies nothing. PostgreSQL delivers the
-- notifications at commit.

CREATE OR REPLACE FUNCTION dualreg_notify_key() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('dualreg_keys', '');
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('dualreg_keys', OLD.id::text);
    ELSE
        PERFORM pg_notify('dualreg_keys', NEW.id::text);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER api_keys_changed AFTER INSERT OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION dualreg_notify_key();
CREATE OR REPLACE TRIGGER api_keys_updated AFTER UPDATE ON api_keys
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION dualreg_notify_key();
CREATE OR REPLACE TRIGGER api_keys_truncated AFTER TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION dualreg_notify_key();
