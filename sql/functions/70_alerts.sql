-- Same-day safeguarding alerts for dual-registered pupils, delivered like every other
-- event (webhooks, change feed) to the school that does NOT expect the pupil that
-- session, usually the home school learning about its pupil at the PRU:
--  attendance.absent   the expected school recorded an absence (authorised or
--                      unauthorised category); raised when a session's mark at the
--                      expected school becomes an absence.
--  attendance.missing  no mark at the expected school by its register close time plus
--                      a grace period; once per pupil and session, never on weekends
--                      or closure days.
-- alerts_sent (schema/008_alerts.sql) makes each missing-mark alert happen once.

-- attendance.absent, from the marks themselves however they are written.
CREATE OR REPLACE FUNCTION dualreg_absence_alert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_new_cat text;
    v_old_cat text;
    p record;
BEGIN
    IF NEW.source = 'derived' THEN
        RETURN NULL;
    END IF;
    SELECT category INTO v_new_cat FROM attendance_codes WHERE code = NEW.code;
    IF v_new_cat NOT IN ('authorised', 'unauthorised') THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        SELECT category INTO v_old_cat FROM attendance_codes WHERE code = OLD.code;
        IF v_old_cat IN ('authorised', 'unauthorised') THEN
            RETURN NULL; /* already absent: one alert per absence, not per amendment */
        END IF;
    END IF;
    SELECT * INTO p FROM dualreg_day_plan(NEW.upn, NEW.date, NEW.date) pl
     WHERE pl.session = NEW.session;
    IF NOT FOUND OR p.other_urn IS NULL OR p.expected_urn <> NEW.urn THEN
        RETURN NULL;
    END IF;
    PERFORM dualreg_emit('attendance.absent', NEW.upn, ARRAY[p.other_urn],
        jsonb_build_object('upn', NEW.upn, 'urn', NEW.urn, 'date', NEW.date,
                           'session', NEW.session, 'code', NEW.code,
                           'category', v_new_cat, 'notify_urn', p.other_urn));
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER marks_absence_alert
    AFTER INSERT OR UPDATE OF code ON marks
    FOR EACH ROW EXECUTE FUNCTION dualreg_absence_alert();

-- Raises attendance.missing for today's sessions whose register closed more than
-- p_grace ago without a mark at the expected school. Safe to run from several daemons
-- at once and as often as wanted: alerts_sent makes each alert happen once.
-- Returns the number of alerts raised.
CREATE OR REPLACE FUNCTION dualreg_missing_alerts(p_grace interval) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_today date := dualreg_today();
    v_now_local timestamp := dualreg_now() AT TIME ZONE 'Europe/London';
    v_count integer := 0;
    r record;
BEGIN
    FOR r IN
        SELECT pl.*, s.upn_key
          FROM (SELECT DISTINCT upn AS upn_key FROM registrations
                 WHERE role = 'subsidiary'
                   AND v_today BETWEEN start_date AND coalesce(end_date, 'infinity')) s,
               LATERAL dualreg_day_plan(s.upn_key, v_today, v_today) pl
          JOIN schools sc ON sc.urn = pl.expected_urn
         WHERE pl.other_urn IS NOT NULL AND NOT pl.expected_closed
           AND v_today + CASE pl.session WHEN 'AM' THEN sc.am_close ELSE sc.pm_close END
               + p_grace <= v_now_local
           AND NOT EXISTS (SELECT 1 FROM marks m
                            WHERE m.upn = s.upn_key AND m.urn = pl.expected_urn
                              AND m.date = v_today AND m.session = pl.session)
    LOOP
        INSERT INTO alerts_sent (upn, date, session, type)
        VALUES (r.upn_key, v_today, r.session, 'attendance.missing')
        ON CONFLICT DO NOTHING;
        IF FOUND THEN
            PERFORM dualreg_emit('attendance.missing', r.upn_key, ARRAY[r.other_urn],
                jsonb_build_object('upn', r.upn_key, 'urn', r.expected_urn, 'date', v_today,
                                   'session', r.session, 'notify_urn', r.other_urn));
            v_count := v_count + 1;
        END IF;
    END LOOP;
    RETURN v_count;
END $$;
