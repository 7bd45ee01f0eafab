-- Data a pupil's status is built from notifies dualreg_events when it changes, however
-- it is changed (the API, a pulled feed, the daily job, or an operator's SQL), so that
-- daemons holding status bodies in memory drop them. PostgreSQL folds the repeated
-- notifications of one transaction into one, delivered at commit. The payload '-' says
-- that no event comes with it (events announce themselves, functions/10_core.sql), so
-- change-feed long polls are not woken by it.

CREATE OR REPLACE FUNCTION dualreg_notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dualreg_events', '-');
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER marks_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON marks FOR EACH STATEMENT EXECUTE FUNCTION dualreg_notify_change();
CREATE OR REPLACE TRIGGER registrations_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON registration_records FOR EACH STATEMENT EXECUTE FUNCTION dualreg_notify_change();
CREATE OR REPLACE TRIGGER schedules_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON registration_schedules FOR EACH STATEMENT EXECUTE FUNCTION dualreg_notify_change();
CREATE OR REPLACE TRIGGER closures_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON school_closures FOR EACH STATEMENT EXECUTE FUNCTION dualreg_notify_change();
CREATE OR REPLACE TRIGGER pupils_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON pupils FOR EACH STATEMENT EXECUTE FUNCTION dualreg_notify_change();
CREATE OR REPLACE TRIGGER codes_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON attendance_codes FOR EACH STATEMENT EXECUTE FUNCTION dualreg_notify_change();
