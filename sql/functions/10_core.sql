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

-- Every event, however it was inserted (dualreg_emit or a set-based insert of many),
-- is filed under the schools it concerns (event_schools, which a school's change feed
-- reads) and announced on dualreg_events with those schools: the payload is their URNs,
-- comma-separated, or '*' (every school) when they would not fit in a notification or
-- there are none. Listeners wake when the transaction commits; a daemon wakes only the
-- long polls of keys that can see one of the schools (include/dualreg/listen.h).
CREATE OR REPLACE FUNCTION dualreg_events_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_payload text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_events) THEN
        RETURN NULL; -- a statement that inserted nothing
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
