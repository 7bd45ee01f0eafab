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

-- attendance.absent, from the marks themselves however they are written: statement-level
-- triggers over the rows each statement inserted or updated (marks_absence_alert and
-- marks_absence_alert_update), so a batch of marks raises its alerts in one insert of
-- events. A row raises one when it is a school's own mark (not a derived D) whose code is
-- an absence (authorised or unauthorised category), it was not an absence before the
-- update (one alert per absence, not per amendment), the pupil is dual registered that
-- day and the mark is at the school expected that session; the alert goes to the other
-- school. An update is paired with the row it changed by the mark's key (upn, date,
-- session, urn), which nothing changes.
CREATE OR REPLACE FUNCTION dualreg_absence_alert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_absent jsonb;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_marks) THEN
        RETURN NULL; -- (an upsert fires the update trigger too, often for no rows)
    END IF;
    -- The rows that became absences, as few as they usually are: the day plans are
    -- asked for these alone.
    IF TG_OP = 'INSERT' THEN
        SELECT jsonb_agg(jsonb_build_object('upn', n.upn, 'urn', n.urn, 'date', n.date,
                                            'session', n.session, 'code', n.code,
                                            'category', c.category))
          INTO v_absent
          FROM new_marks n
          JOIN attendance_codes c ON c.code = n.code
         WHERE n.source <> 'derived' AND c.category IN ('authorised', 'unauthorised');
    ELSE
        SELECT jsonb_agg(jsonb_build_object('upn', n.upn, 'urn', n.urn, 'date', n.date,
                                            'session', n.session, 'code', n.code,
                                            'category', c.category))
          INTO v_absent
          FROM new_marks n
          JOIN attendance_codes c ON c.code = n.code
          LEFT JOIN old_marks o
            ON o.upn = n.upn AND o.date = n.date AND o.session = n.session
           AND o.urn = n.urn
          LEFT JOIN attendance_codes oc ON oc.code = o.code
         WHERE n.source <> 'derived' AND c.category IN ('authorised', 'unauthorised')
           AND oc.category IS DISTINCT FROM 'authorised'
           AND oc.category IS DISTINCT FROM 'unauthorised';
    END IF;
    IF v_absent IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO events (type, upn, urns, data, occurred_at)
    SELECT 'attendance.absent', a->>'upn', ARRAY[pl.other_urn],
           a || jsonb_build_object('notify_urn', pl.other_urn), dualreg_now()
      FROM jsonb_array_elements(v_absent) a
      JOIN dualreg_dual_plans(ARRAY(SELECT x->>'upn' FROM jsonb_array_elements(v_absent) x),
                              ARRAY(SELECT (x->>'date')::date
                                      FROM jsonb_array_elements(v_absent) x)) pl
        ON pl.upn = a->>'upn' AND pl.date = (a->>'date')::date
       AND pl.session = a->>'session' AND pl.expected_urn = a->>'urn'
     ORDER BY a->>'upn', a->>'date', a->>'session', a->>'urn';
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER marks_absence_alert
    AFTER INSERT ON marks REFERENCING NEW TABLE AS new_marks
    FOR EACH STATEMENT EXECUTE FUNCTION dualreg_absence_alert();
CREATE OR REPLACE TRIGGER marks_absence_alert_update
    AFTER UPDATE ON marks REFERENCING OLD TABLE AS old_marks NEW TABLE AS new_marks
    FOR EACH STATEMENT EXECUTE FUNCTION dualreg_absence_alert();

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

-- GET /v1/alerts: one day's alerts as the staff web app lists them. Every
-- attendance.absent and attendance.missing event about a session of p_date (NULL: today;
-- the session's date from the event's data, not the day it was raised) that p_scope_urn
-- may read: NULL (an admin key) every one; a URN the events filed under that school
-- (event_schools), as the change feed scopes them. Each with the pupil, the school that
-- expected the pupil (urn, school_name), the pupil's main school that day (home_urn), the
-- expected school's mark for the session now (current_code, only a real mark counts)
-- and whether it settles the alert (resolved: a present or approved educational activity
-- mark), and its urgency, 1 the most urgent:
--   1 missing, not resolved: nobody has said where the pupil is;
--   2 absent, not resolved, unauthorised (O, N, U, G: no reason known or accepted), by
--     the absence mark now at the expected school, else the code alerted;
--   3 absent, not resolved, any other absence;
--   4 resolved.
-- Ordered by urgency, then by when the alert was raised (then by event). At most p_limit
-- alerts; truncated says whether there were more. Returns {date, alerts, truncated}.
-- The day's alert events are found through events_alert_day (schema step 024).
CREATE OR REPLACE FUNCTION dualreg_alerts(p_date date, p_scope_urn text, p_limit integer)
RETURNS json LANGUAGE sql STABLE AS $$
  WITH d AS (
    SELECT coalesce(p_date, dualreg_today()) AS date
  ), ev AS (
    SELECT e.id, e.type, e.upn, e.occurred_at, e.data->>'urn' AS urn,
           e.data->>'session' AS session, e.data->>'code' AS code, d.date
      FROM d, events e
     WHERE e.type IN ('attendance.absent', 'attendance.missing')
       AND e.data->>'date' = to_char(d.date::timestamp, 'YYYY-MM-DD')
       AND (p_scope_urn IS NULL
            OR EXISTS (SELECT 1 FROM event_schools s
                        WHERE s.event_id = e.id AND s.urn = p_scope_urn))
  ), a AS (
    SELECT ev.*, p.given_name, p.family_name, sc.name AS school_name,
           (SELECT g.urn FROM registrations g
             WHERE g.upn = ev.upn AND g.role = 'main'
               AND ev.date BETWEEN g.start_date AND coalesce(g.end_date, 'infinity')
             LIMIT 1) AS home_urn,
           now_mark.code AS current_code, now_mark.category AS current_category,
           alerted.category AS alerted_category
      FROM ev
      JOIN pupils p ON p.upn = ev.upn
      JOIN schools sc ON sc.urn = ev.urn
      LEFT JOIN LATERAL (
        SELECT m.code, c.category FROM marks m JOIN attendance_codes c ON c.code = m.code
         WHERE m.upn = ev.upn AND m.date = ev.date AND m.session = ev.session
           AND m.urn = ev.urn AND dualreg_mark_is_real(m.code, m.source)) now_mark ON true
      LEFT JOIN attendance_codes alerted ON alerted.code = ev.code
  ), ranked AS (
    SELECT a.*,
           CASE WHEN a.current_category IN ('present', 'aea') THEN 4
                WHEN a.type = 'attendance.missing' THEN 1
                WHEN CASE WHEN a.current_category IN ('authorised', 'unauthorised')
                          THEN a.current_category
                          ELSE a.alerted_category END = 'unauthorised' THEN 2
                ELSE 3 END AS urgency
      FROM a
     ORDER BY urgency, a.occurred_at, a.id
     LIMIT p_limit + 1
  ), page AS (
    SELECT * FROM ranked ORDER BY urgency, occurred_at, id LIMIT p_limit
  )
  SELECT json_build_object(
    'date', to_char(d.date::timestamp, 'YYYY-MM-DD'),
    'alerts', coalesce((
      SELECT json_agg(json_build_object(
               'id', r.id, 'type', r.type, 'upn', r.upn, 'given_name', r.given_name,
               'family_name', r.family_name, 'urn', r.urn, 'school_name', r.school_name,
               'home_urn', r.home_urn, 'date', to_char(r.date::timestamp, 'YYYY-MM-DD'),
               'session', r.session,
               'code', CASE WHEN r.type = 'attendance.absent' THEN r.code END,
               'raised_at', r.occurred_at, 'urgency', r.urgency,
               'resolved', r.urgency = 4, 'current_code', r.current_code)
             ORDER BY r.urgency, r.occurred_at, r.id)
        FROM page r), '[]'::json),
    'truncated', (SELECT count(*) FROM ranked) > p_limit)
  FROM d
$$;
