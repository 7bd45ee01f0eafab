-- Reads for home schools: a pupil's live status for one day, a school's register for
-- one session, and a pupil's attendance over a period with its summary. Each is one
-- function returning the whole JSON body, so that the API answers each read in one
-- round trip. Scope is decided here too: p_scope_urn NULL means an admin key; a school
-- key passes its URN and gets NULL back (the API answers 404) for a pupil it may not
-- read, so existence is not leaked.

-- Until the schema and the functions were split this was a second dualreg_mark_json,
-- with other arguments and a json result; one name, one function.
DROP FUNCTION IF EXISTS dualreg_mark_json(text, text, smallint, text, timestamptz);

-- A mark as the reads show it (in a session or a register; the marks API shows the
-- longer dualreg_mark_json).
CREATE OR REPLACE FUNCTION dualreg_session_mark_json(p_code text, p_category text,
                                                     p_minutes_late smallint, p_source text,
                                                     p_recorded_at timestamptz)
RETURNS json LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN p_code IS NOT NULL THEN
    json_build_object('code', p_code, 'category', p_category,
                      'minutes_late', p_minutes_late, 'source', p_source,
                      'recorded_at', p_recorded_at) END
$$;

-- A real mark: one a school recorded itself (not D, not derived).
CREATE OR REPLACE FUNCTION dualreg_mark_is_real(p_code text, p_source text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
  SELECT p_code IS NOT NULL AND p_code <> 'D' AND p_source <> 'derived'
$$;

-- The one-word state of a session, from the mark at the expected school:
-- present / aea by category; '#' (planned closure) closed; 'Z' (not yet on roll)
-- not_on_roll; any other real mark (authorised, unauthorised, not possible) absent.
-- Without a real mark: closed on weekends and closures, else unmarked.
CREATE OR REPLACE FUNCTION dualreg_session_state(p_on_roll boolean, p_expected_urn text,
                                                 p_expected_closed boolean, p_code text,
                                                 p_category text, p_source text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN NOT p_on_roll THEN 'not_on_roll'
    WHEN dualreg_mark_is_real(p_code, p_source) THEN
      CASE WHEN p_category = 'present' THEN 'present'
           WHEN p_category = 'aea' THEN 'aea'
           WHEN p_code = '#' THEN 'closed'
           WHEN p_code = 'Z' THEN 'not_on_roll'
           ELSE 'absent' END
    WHEN p_expected_urn IS NULL OR p_expected_closed THEN 'closed'
    ELSE 'unmarked' END
$$;

-- GET /v1/pupils/{upn}/status. p_date NULL: today. NULL when the pupil does not exist
-- or, for a school key, was not registered at that school on that date.
-- The read every poll of a home school makes: PL/pgSQL, so that each of its few
-- statements (a probe each of pupils, registrations, the schedule and the day's marks)
-- is planned once per connection, not at every call as a SQL function's body is; the
-- day's plan is worked out here for the one day (as dualreg_day_plan does for many).
-- On 1000 pupils this costs about a tenth of the single-statement form it replaced.
CREATE OR REPLACE FUNCTION dualreg_status(p_upn text, p_date date, p_scope_urn text)
RETURNS json LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_date date := coalesce(p_date, dualreg_today());
    v_main text;
    v_sub text;
    v_sub_id bigint;
    v_here boolean;
    v_mask integer;
    v_marks json;
    v_sessions json;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pupils WHERE upn = p_upn) THEN
        RETURN NULL;
    END IF;
    SELECT max(g.urn) FILTER (WHERE g.role = 'main'),
           max(g.urn) FILTER (WHERE g.role = 'subsidiary'),
           max(g.id) FILTER (WHERE g.role = 'subsidiary'),
           coalesce(bool_or(g.urn = p_scope_urn), false)
      INTO v_main, v_sub, v_sub_id, v_here
      FROM registrations g
     WHERE g.upn = p_upn AND v_date BETWEEN g.start_date AND coalesce(g.end_date, 'infinity');
    IF p_scope_urn IS NOT NULL AND NOT v_here THEN
        RETURN NULL;
    END IF;
    IF v_sub_id IS NOT NULL THEN
        SELECT rs.mask INTO v_mask FROM registration_schedules rs
         WHERE rs.registration_id = v_sub_id AND rs.effective_from <= v_date
         ORDER BY rs.effective_from DESC LIMIT 1;
    END IF;
    SELECT json_agg(json_build_object(
             'session', x.session,
             'expected_urn', x.expected_urn,
             'main_urn', v_main,
             'subsidiary_urn', v_sub,
             'marks', coalesce((
               SELECT json_object_agg(u.urn, (
                        SELECT dualreg_session_mark_json(m.code, c.category, m.minutes_late,
                                                         m.source, m.recorded_at)
                          FROM marks m JOIN attendance_codes c ON c.code = m.code
                         WHERE m.upn = p_upn AND m.date = v_date AND m.session = x.session
                           AND m.urn = u.urn)
                        ORDER BY u.ord)
                 FROM unnest(ARRAY[v_main, v_sub]) WITH ORDINALITY AS u(urn, ord)
                WHERE u.urn IS NOT NULL), '{}'::json),
             'conflict', v_main IS NOT NULL AND v_sub IS NOT NULL
                         AND (SELECT count(*) FROM marks m
                               WHERE m.upn = p_upn AND m.date = v_date
                                 AND m.session = x.session AND m.urn IN (v_main, v_sub)
                                 AND dualreg_mark_is_real(m.code, m.source)) = 2,
             'state', dualreg_session_state(
                        v_main IS NOT NULL OR v_sub IS NOT NULL, x.expected_urn,
                        x.expected_urn IS NULL OR dualreg_closed(x.expected_urn, v_date),
                        em.code, em.category, em.source))
           ORDER BY x.ord)
      INTO v_sessions
      FROM (SELECT s.ord, s.session,
                   dualreg_expected_urn(v_main, v_sub, v_mask, v_date, s.session)
                     AS expected_urn
              FROM (VALUES (1, 'AM'), (2, 'PM')) AS s(ord, session)) x
      LEFT JOIN LATERAL (
             SELECT m.code, c.category, m.source
               FROM marks m JOIN attendance_codes c ON c.code = m.code
              WHERE m.upn = p_upn AND m.date = v_date AND m.session = x.session
                AND m.urn = x.expected_urn) em ON true;
    RETURN json_build_object('upn', p_upn, 'date', v_date, 'sessions', v_sessions);
END $$;


-- GET /v1/schools/{urn}/register. NULL when the school does not exist. Every pupil on
-- the school's roll that day with this school's mark, where the pupil is expected and,
-- when dual registered, the other school and its mark.
CREATE OR REPLACE FUNCTION dualreg_register(p_urn text, p_date date, p_session text)
RETURNS json LANGUAGE sql STABLE AS $$
  WITH pupils_here AS (
    SELECT p.upn, p.given_name, p.family_name, g.role,
           (SELECT o.urn FROM registrations o
             WHERE o.upn = p.upn AND o.urn <> p_urn
               AND p_date BETWEEN o.start_date AND coalesce(o.end_date, 'infinity')
             ORDER BY o.role LIMIT 1) AS other_urn
      FROM registrations g JOIN pupils p ON p.upn = g.upn
     WHERE g.urn = p_urn
       AND p_date BETWEEN g.start_date AND coalesce(g.end_date, 'infinity')
  ), rows AS (
    SELECT ph.*, pl.expected_urn,
           (SELECT dualreg_session_mark_json(m.code, c.category, m.minutes_late, m.source,
                                             m.recorded_at)
              FROM marks m JOIN attendance_codes c ON c.code = m.code
             WHERE m.upn = ph.upn AND m.urn = p_urn AND m.date = p_date
               AND m.session = p_session) AS mark,
           (SELECT dualreg_session_mark_json(m.code, c.category, m.minutes_late, m.source,
                                             m.recorded_at)
              FROM marks m JOIN attendance_codes c ON c.code = m.code
             WHERE m.upn = ph.upn AND m.urn = ph.other_urn AND m.date = p_date
               AND m.session = p_session) AS other_mark
      FROM pupils_here ph
      LEFT JOIN LATERAL (
             SELECT x.expected_urn FROM dualreg_day_plan(ph.upn, p_date, p_date) x
              WHERE x.session = p_session) pl ON true
  )
  SELECT json_build_object(
           'urn', s.urn,
           'date', p_date,
           'session', p_session,
           'closed', dualreg_closed(s.urn, p_date),
           'pupils', coalesce((
             SELECT json_agg(json_build_object(
                      'upn', r.upn,
                      'given_name', r.given_name,
                      'family_name', r.family_name,
                      'role', r.role,
                      'mark', r.mark,
                      'expected_urn', r.expected_urn,
                      'expected_here', coalesce(r.expected_urn = p_urn, false),
                      'other_urn', r.other_urn,
                      'other_school_name', (SELECT o.name FROM schools o
                                             WHERE o.urn = r.other_urn),
                      'other_mark', r.other_mark)
                    ORDER BY r.family_name, r.given_name, r.upn)
               FROM rows r), '[]'::json))
    FROM schools s
   WHERE s.urn = p_urn
$$;

-- Counts of a set of marks (by their codes' category and possible flag) as a summary
-- object: rate = (present + aea) / possible, NULL when nothing was possible.
CREATE OR REPLACE FUNCTION dualreg_summary_json(p_possible bigint, p_present bigint,
                                                p_aea bigint, p_authorised bigint,
                                                p_unauthorised bigint, p_not_possible bigint)
RETURNS json LANGUAGE sql IMMUTABLE AS $$
  SELECT json_build_object(
           'possible', p_possible, 'present', p_present, 'aea', p_aea,
           'authorised', p_authorised, 'unauthorised', p_unauthorised,
           'not_possible', p_not_possible,
           'rate', round((p_present + p_aea)::numeric / nullif(p_possible, 0), 4))
$$;

-- GET /v1/pupils/{upn}/attendance. NULL when the pupil does not exist or, for a school
-- key, was never registered at that school in [p_from, p_to]. A school key sees both
-- schools' marks, but only on the dates the pupil was on its own roll.
-- Per school: every mark of that school. Combined: each session once, counted by the
-- mark at the school expected that session (so D, not possible, never doubles a day).
CREATE OR REPLACE FUNCTION dualreg_attendance(p_upn text, p_from date, p_to date,
                                              p_scope_urn text)
RETURNS json LANGUAGE sql STABLE AS $$
  WITH visible AS (
    SELECT 1 FROM pupils p
     WHERE p.upn = p_upn
       AND (p_scope_urn IS NULL OR EXISTS (
             SELECT 1 FROM registrations g
              WHERE g.upn = p_upn AND g.urn = p_scope_urn
                AND daterange(g.start_date, g.end_date, '[]')
                    && daterange(p_from, p_to, '[]')))
  ), in_scope AS (
    -- the dates this caller may read
    SELECT d::date AS date
      FROM generate_series(p_from, p_to, interval '1 day') AS d
     WHERE p_scope_urn IS NULL OR EXISTS (
             SELECT 1 FROM registrations g
              WHERE g.upn = p_upn AND g.urn = p_scope_urn
                AND d::date BETWEEN g.start_date AND coalesce(g.end_date, 'infinity'))
  ), plan AS (
    SELECT pl.* FROM dualreg_day_plan(p_upn, p_from, p_to) pl
     WHERE pl.date IN (SELECT date FROM in_scope)
  ), mk AS (
    SELECT m.date, m.session, m.urn, m.code, c.category, c.possible, m.minutes_late,
           m.source, m.recorded_at,
           (m.urn = pl.expected_urn) AS at_expected
      FROM marks m
      JOIN attendance_codes c ON c.code = m.code
      LEFT JOIN plan pl ON pl.date = m.date AND pl.session = m.session
     WHERE m.upn = p_upn AND m.date BETWEEN p_from AND p_to
       AND m.date IN (SELECT date FROM in_scope)
  ), schools_seen AS (
    -- the schools on roll on some day the caller may read
    SELECT DISTINCT g.urn FROM registrations g
     WHERE g.upn = p_upn
       AND daterange(g.start_date, g.end_date, '[]') && daterange(p_from, p_to, '[]')
       AND EXISTS (SELECT 1 FROM in_scope s
                    WHERE s.date BETWEEN g.start_date AND coalesce(g.end_date, 'infinity'))
    UNION
    SELECT urn FROM mk
  )
  SELECT json_build_object(
           'upn', p_upn,
           'from', p_from,
           'to', p_to,
           'marks', coalesce((
             SELECT json_agg(json_build_object(
                      'date', mk.date, 'session', mk.session, 'urn', mk.urn,
                      'code', mk.code, 'category', mk.category,
                      'minutes_late', mk.minutes_late, 'source', mk.source,
                      'recorded_at', mk.recorded_at,
                      'expected', coalesce(mk.at_expected, false))
                    ORDER BY mk.date, mk.session, mk.urn)
               FROM mk), '[]'::json),
           'summary', json_build_object(
             'schools', coalesce((
               SELECT json_object_agg(x.urn, x.summary ORDER BY x.urn)
                 FROM (SELECT s.urn, dualreg_summary_json(
                                count(mk.code) FILTER (WHERE mk.possible),
                                count(mk.code) FILTER (WHERE mk.category = 'present'),
                                count(mk.code) FILTER (WHERE mk.category = 'aea'),
                                count(mk.code) FILTER (WHERE mk.category = 'authorised'),
                                count(mk.code) FILTER (WHERE mk.category = 'unauthorised'),
                                count(mk.code) FILTER (WHERE NOT mk.possible)) AS summary
                         FROM schools_seen s
                         LEFT JOIN mk ON mk.urn = s.urn
                        GROUP BY s.urn) x), '{}'::json),
             'combined', (
               SELECT dualreg_summary_json(
                        count(*) FILTER (WHERE mk.possible),
                        count(*) FILTER (WHERE mk.category = 'present'),
                        count(*) FILTER (WHERE mk.category = 'aea'),
                        count(*) FILTER (WHERE mk.category = 'authorised'),
                        count(*) FILTER (WHERE mk.category = 'unauthorised'),
                        count(*) FILTER (WHERE NOT mk.possible))
                 FROM mk WHERE mk.at_expected)))
   WHERE EXISTS (SELECT 1 FROM visible)
$$;

-- The attendance codes (GET /v1/attendance-codes): the table that decides what each code
-- means and counts as, for clients that show marks to people.
CREATE OR REPLACE FUNCTION dualreg_attendance_codes_json() RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('codes', json_agg(json_build_object(
               'code', code, 'meaning', meaning, 'category', category, 'possible', possible,
               'valid_from', valid_from, 'valid_to', valid_to) ORDER BY code))
      FROM attendance_codes
$$;
