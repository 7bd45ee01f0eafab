-- What every area uses: the clock, the event log's writer and the pupil lock.
--
-- The files in this directory are the database's code. `dualregctl migrate` runs every
-- one of them, in the order of their numbers, on every run, after the pending schema
-- steps (sql/schema/) and in the same transaction, so each must be re-runnable:
-- CREATE OR REPLACE FUNCTION, CREATE OR REPLACE TRIGGER, and DROP FUNCTION IF EXISTS
-- for a function that is retired or whose arguments or result change (which CREATE OR
-- REPLACE cannot do). A later file may use what an earlier one defines: SQL-language
-- functions are checked against the tables and functions they name when created.

-- "Now" and "today" for every rule. Production uses the real clock; a session may set
-- dualreg.now (a timestamptz) so that time-dependent behaviour is testable.
CREATE OR REPLACE FUNCTION dualreg_now() RETURNS timestamptz
LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('dualreg.now', true), '')::timestamptz, now())
$$;

-- Schools keep Europe/London time.
CREATE OR REPLACE FUNCTION dualreg_today() RETURNS date
LANGUAGE sql STABLE AS $$
  SELECT (dualreg_now() AT TIME ZONE 'Europe/London')::date
$$;

-- An event type still named by an event cannot be deleted or renamed (nor event_types
-- emptied while events exist), as with the foreign key this replaces.
CREATE OR REPLACE FUNCTION dualreg_event_types_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_type text;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        IF EXISTS (SELECT 1 FROM events) THEN
            RAISE EXCEPTION 'cannot truncate event_types: events refer to it'
                USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'events_type_fkey';
        END IF;
        RETURN NULL;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT o.type INTO v_type FROM old_types o
         WHERE EXISTS (SELECT 1 FROM events e WHERE e.type = o.type) LIMIT 1;
    ELSE
        SELECT o.type INTO v_type FROM old_types o
         WHERE NOT EXISTS (SELECT 1 FROM new_types n WHERE n.type = o.type)
           AND EXISTS (SELECT 1 FROM events e WHERE e.type = o.type) LIMIT 1;
    END IF;
    IF FOUND THEN
        RAISE EXCEPTION 'update or delete on table "event_types" violates foreign key constraint "events_type_fkey" on table "events"'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'events_type_fkey',
                  TABLE = 'event_types',
                  DETAIL = format('Key (type)=(%s) is still referenced from table "events".',
                                  v_type);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER event_types_deleted
    AFTER DELETE ON event_types REFERENCING OLD TABLE AS old_types
    FOR EACH STATEMENT EXECUTE FUNCTION dualreg_event_types_guard();
CREATE OR REPLACE TRIGGER event_types_updated
    AFTER UPDATE ON event_types REFERENCING OLD TABLE AS old_types NEW TABLE AS new_types
    FOR EACH STATEMENT EXECUTE FUNCTION dualreg_event_types_guard();
CREATE OR REPLACE TRIGGER event_types_truncated
    BEFORE TRUNCATE ON event_types
    FOR EACH STATEMENT EXECUTE FUNCTION dualreg_event_types_guard();

-- Every event, however it was inserted (dualreg_emit or a set-based insert of many),
-- is filed under the schools it concerns (event_schools, which a school's change feed
-- reads) and announced on dualreg_events with those schools: the payload is their URNs,
-- comma-separated, or '*' (every school) when they would not fit in a notification or
-- there are none. Listeners wake when the transaction commits; a daemon wakes only the
-- long polls of keys that can see one of the schools (include/dualreg/listen.h).
-- It also checks the events' types (below).
CREATE OR REPLACE FUNCTION dualreg_events_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_payload text;
    v_type text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_events) THEN
        RETURN NULL; -- a statement that inserted nothing
    END IF;
    -- events.type must be one of event_types: checked here once per statement rather
    -- than by a foreign key's check per row (schema step 026). As a foreign key does,
    -- it takes a KEY SHARE lock on each type named, so that a concurrent delete of a
    -- type waits for this transaction and then finds its events
    -- (dualreg_event_types_guard).
    PERFORM 1 FROM event_types t WHERE t.type IN (SELECT n.type FROM new_events n)
        FOR KEY SHARE;
    SELECT n.type INTO v_type FROM new_events n
     WHERE NOT EXISTS (SELECT 1 FROM event_types t WHERE t.type = n.type) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'insert or update on table "events" violates foreign key constraint "events_type_fkey"'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'events_type_fkey',
                  TABLE = 'events',
                  DETAIL = format('Key (type)=(%s) is not present in table "event_types".',
                                  v_type);
    END IF;
    IF TG_OP = 'UPDATE' THEN
        RETURN NULL; -- an update is only checked
    END IF;
    WITH filed AS (
        INSERT INTO event_schools (urn, tx, event_id)
        SELECT DISTINCT u.urn, n.tx, n.id
          FROM new_events n CROSS JOIN LATERAL unnest(n.urns) AS u(urn)
         WHERE u.urn IS NOT NULL
        RETURNING urn
    ), schools AS (SELECT DISTINCT urn FROM filed)
    SELECT CASE WHEN count(*) = 0 OR sum(octet_length(urn) + 1) > 7900 THEN '*'
                ELSE string_agg(urn, ',' ORDER BY urn) END
      INTO v_payload FROM schools;
    PERFORM pg_notify('dualreg_events', v_payload);
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER events_inserted
    AFTER INSERT ON events REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION dualreg_events_inserted();
-- (an update of events, which dualreg never makes, has its types checked all the same)
CREATE OR REPLACE TRIGGER events_updated
    AFTER UPDATE ON events REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION dualreg_events_inserted();

-- A deleted event takes its filing with it (event_schools has no foreign key to events:
-- schema step 026): one statement per delete, however many events it removes, and a
-- TRUNCATE of events empties event_schools too.
CREATE OR REPLACE FUNCTION dualreg_events_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE event_schools;
    ELSE
        DELETE FROM event_schools s USING old_events o WHERE s.event_id = o.id;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER events_deleted
    AFTER DELETE ON events REFERENCING OLD TABLE AS old_events
    FOR EACH STATEMENT EXECUTE FUNCTION dualreg_events_deleted();
CREATE OR REPLACE TRIGGER events_truncated
    AFTER TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION dualreg_events_deleted();

-- Records an event (see dualreg_events_inserted for what follows).
-- p_type must be one of event_types (the foreign key refuses anything else).
CREATE OR REPLACE FUNCTION dualreg_emit(p_type text, p_upn text, p_urns text[], p_data jsonb)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO events (type, upn, urns, data, occurred_at)
    VALUES (p_type, p_upn, p_urns, p_data, dualreg_now())
    RETURNING id INTO v_id;
    RETURN v_id;
END $$;

-- Everything that writes marks for a pupil first takes the pupil's transaction-level
-- advisory lock, so concurrent writers for one pupil queue up instead of losing each
-- other's updates.
CREATE OR REPLACE FUNCTION dualreg_lock_pupil(p_upn text) RETURNS void
LANGUAGE sql AS $$
  SELECT pg_advisory_xact_lock(hashtextextended('dualreg.pupil:' || p_upn, 0))
$$;
