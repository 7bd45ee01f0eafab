-- Where a dual-registered pupil is expected each session (the day plan), and the
-- derived D marks that follow from it: the school that does not expect the pupil gets a
-- D. Writers take the pupil's lock (dualreg_lock_pupil) before changing marks.

-- Bit of a weekday session in a schedule mask (NULL at weekends).
CREATE OR REPLACE FUNCTION dualreg_session_bit(p_date date, p_session text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN extract(isodow FROM p_date) BETWEEN 1 AND 5
              THEN (extract(isodow FROM p_date)::integer - 1) * 2
                   + CASE WHEN p_session = 'PM' THEN 1 ELSE 0 END END
$$;

-- The school expected to record the real mark of a session (NULL on a weekend): the
-- only school on roll, or with both, the subsidiary on the sessions its schedule (mask)
-- names and the main school on the others. A plain expression, inlined where used.
CREATE OR REPLACE FUNCTION dualreg_expected_urn(p_main_urn text, p_sub_urn text,
                                                p_mask integer, p_date date, p_session text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN extract(isodow FROM p_date) NOT BETWEEN 1 AND 5 THEN NULL
              WHEN p_main_urn IS NULL THEN p_sub_urn
              WHEN p_sub_urn IS NULL THEN p_main_urn
              WHEN (coalesce(p_mask, 0) >> dualreg_session_bit(p_date, p_session)) & 1 = 1
                THEN p_sub_urn
              ELSE p_main_urn END
$$;

CREATE OR REPLACE FUNCTION dualreg_closed(p_urn text, p_date date) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT extract(isodow FROM p_date) > 5
      OR EXISTS (SELECT 1 FROM school_closures
                  WHERE urn = p_urn AND p_date BETWEEN from_date AND to_date)
$$;

-- One row per date and session in [p_from, p_to] (weekdays only) on which the pupil is
-- on any roll: the main and subsidiary schools that day, the school expected, the
-- other school (NULL unless dual registered) and whether each is closed.
CREATE OR REPLACE FUNCTION dualreg_day_plan(p_upn text, p_from date, p_to date)
RETURNS TABLE (date date, session text, main_urn text, sub_urn text,
               expected_urn text, other_urn text,
               expected_closed boolean, other_closed boolean)
LANGUAGE sql STABLE AS $$
  WITH days AS (
    SELECT d::date AS date, s.session
      FROM generate_series(p_from, p_to, interval '1 day') AS d,
           (VALUES ('AM'), ('PM')) AS s(session)
     WHERE extract(isodow FROM d) BETWEEN 1 AND 5
  ), placed AS (
    SELECT days.date, days.session, m.urn AS main_urn, s.urn AS sub_urn,
           (SELECT rs.mask FROM registration_schedules rs
             WHERE rs.registration_id = s.id AND rs.effective_from <= days.date
             ORDER BY rs.effective_from DESC LIMIT 1) AS mask
      FROM days
      LEFT JOIN registrations m
        ON m.upn = p_upn AND m.role = 'main'
       AND days.date BETWEEN m.start_date AND coalesce(m.end_date, 'infinity')
      LEFT JOIN registrations s
        ON s.upn = p_upn AND s.role = 'subsidiary'
       AND days.date BETWEEN s.start_date AND coalesce(s.end_date, 'infinity')
     WHERE m.id IS NOT NULL OR s.id IS NOT NULL
  ), chosen AS (
    SELECT placed.*,
           dualreg_expected_urn(main_urn, sub_urn, mask, placed.date, placed.session)
             AS expected_urn
      FROM placed
  )
  SELECT c.date, c.session, c.main_urn, c.sub_urn, c.expected_urn,
         CASE WHEN c.main_urn IS NOT NULL AND c.sub_urn IS NOT NULL
              THEN CASE WHEN c.expected_urn = c.main_urn THEN c.sub_urn ELSE c.main_urn END
         END AS other_urn,
         dualreg_closed(c.expected_urn, c.date),
         CASE WHEN c.main_urn IS NOT NULL AND c.sub_urn IS NOT NULL
              THEN dualreg_closed(CASE WHEN c.expected_urn = c.main_urn THEN c.sub_urn
                                       ELSE c.main_urn END, c.date) END
    FROM chosen c
$$;

-- Brings the derived D marks of one pupil in [p_from, p_to] in line with the plan:
-- the school that does not expect the pupil gets a D (source 'derived') unless it is
-- closed or already holds a mark of its own; a derived D that no longer belongs
-- (schedule or registration changed) is removed. Both are recorded in mark_history and
-- as mark.derived events. Returns the number of marks created or removed.
-- Callers bound the range (the API: at most 400 days back, never after today).
CREATE OR REPLACE FUNCTION dualreg_derive_d(p_upn text, p_from date, p_to date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_changes integer := 0;
    r record;
BEGIN
    PERFORM dualreg_lock_pupil(p_upn);
    -- Derived D marks that no longer belong.
    FOR r IN
        SELECT mk.urn, mk.date, mk.session
          FROM marks mk
         WHERE mk.upn = p_upn AND mk.source = 'derived' AND mk.date BETWEEN p_from AND p_to
           AND NOT EXISTS (
                 SELECT 1 FROM dualreg_day_plan(p_upn, mk.date, mk.date) p
                  WHERE p.session = mk.session AND p.other_urn = mk.urn
                    AND NOT p.other_closed)
    LOOP
        DELETE FROM marks
         WHERE upn = p_upn AND urn = r.urn AND date = r.date AND session = r.session;
        INSERT INTO mark_history (upn, urn, date, session, old_code, old_source,
                                  new_code, new_source, reason, key_name, changed_at)
        VALUES (p_upn, r.urn, r.date, r.session, 'D', 'derived', NULL, 'derived',
                'the pupil is now expected at this school, or no longer dual registered',
                'dualreg', dualreg_now());
        PERFORM dualreg_emit('mark.derived', p_upn,
            ARRAY(SELECT DISTINCT u FROM unnest(ARRAY[r.urn] || ARRAY(
                    SELECT x FROM dualreg_day_plan(p_upn, r.date, r.date) pl,
                                  LATERAL unnest(ARRAY[pl.main_urn, pl.sub_urn]) x
                     WHERE pl.session = r.session AND x IS NOT NULL)) u),
            jsonb_build_object('upn', p_upn, 'urn', r.urn, 'date', r.date,
                               'session', r.session, 'code', 'D', 'action', 'removed'));
        v_changes := v_changes + 1;
    END LOOP;
    -- Sessions where the other school should hold a D and holds nothing yet.
    FOR r IN
        SELECT p.date, p.session, p.other_urn, p.main_urn, p.sub_urn
          FROM dualreg_day_plan(p_upn, p_from, p_to) p
         WHERE p.other_urn IS NOT NULL AND NOT p.other_closed
           AND NOT EXISTS (SELECT 1 FROM marks mk
                            WHERE mk.upn = p_upn AND mk.urn = p.other_urn
                              AND mk.date = p.date AND mk.session = p.session)
    LOOP
        INSERT INTO marks (upn, urn, date, session, code, source, recorded_at)
        VALUES (p_upn, r.other_urn, r.date, r.session, 'D', 'derived', dualreg_now());
        INSERT INTO mark_history (upn, urn, date, session, new_code, new_source,
                                  reason, key_name, changed_at)
        VALUES (p_upn, r.other_urn, r.date, r.session, 'D', 'derived',
                'dual registered: the pupil is expected at the other school', 'dualreg',
                dualreg_now());
        PERFORM dualreg_emit('mark.derived', p_upn, ARRAY[r.main_urn, r.sub_urn],
            jsonb_build_object('upn', p_upn, 'urn', r.other_urn, 'date', r.date,
                               'session', r.session, 'code', 'D', 'action', 'created'));
        v_changes := v_changes + 1;
    END LOOP;
    RETURN v_changes;
END $$;

-- The daily run: derived D marks for every pupil dual registered on p_date. Several
-- daemons may call it; only one does the work (the others return NULL at once).
CREATE OR REPLACE FUNCTION dualreg_derive_day(p_date date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_total integer := 0;
    v_upn text;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtextextended('dualreg.derive_day', 0)) THEN
        RETURN NULL;
    END IF;
    FOR v_upn IN
        SELECT DISTINCT s.upn FROM registrations s
         WHERE s.role = 'subsidiary'
           AND p_date BETWEEN s.start_date AND coalesce(s.end_date, 'infinity')
         ORDER BY 1
    LOOP
        v_total := v_total + dualreg_derive_d(v_upn, p_date, p_date);
    END LOOP;
    RETURN v_total;
END $$;
