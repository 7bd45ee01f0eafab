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

-- Records an event; listeners on dualreg_events wake when the transaction commits.
-- p_type must be one of event_types (the foreign key refuses anything else).
CREATE OR REPLACE FUNCTION dualreg_emit(p_type text, p_upn text, p_urns text[], p_data jsonb)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO events (type, upn, urns, data, occurred_at)
    VALUES (p_type, p_upn, p_urns, p_data, dualreg_now())
    RETURNING id INTO v_id;
    PERFORM pg_notify('dualreg_events', '');
    RETURN v_id;
END $$;

-- Everything that writes marks for a pupil first takes the pupil's transaction-level
-- advisory lock, so concurrent writers for one pupil queue up instead of losing each
-- other's updates.
CREATE OR REPLACE FUNCTION dualreg_lock_pupil(p_upn text) RETURNS void
LANGUAGE sql AS $$
  SELECT pg_advisory_xact_lock(hashtextextended('dualreg.pupil:' || p_upn, 0))
$$;
