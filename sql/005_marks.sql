-- Marks ingest: the rule engine behind POST /v1/marks (and, later, marks pulled from a
-- school's MIS), and the history read behind GET .../marks/{date}/{session}/history.
--
-- dualreg_ingest_marks takes a whole batch as one jsonb array and answers one jsonb
-- object, so a request costs one statement however many marks it carries. Inside:
--   1. every pupil named is locked (dualreg_lock_pupil, sorted), so concurrent writers
--      for one pupil queue up and none loses another's update;
--   2. one set-based query checks every item against every rule that does not depend
--      on the batch's own writes (formats, scope, pupil, school, registration, dates,
--      code table, minutes late, D placement) and works out where the pupil is expected;
--   3. the items that passed are written in rounds: round k holds the k-th item for
--      each (pupil, school, date, session), so a batch that names a session twice sees
--      its own first write. Each round is one statement that classifies against the
--      stored mark (created, amended, unchanged, or rejected as reason-required),
--      upserts marks, appends mark_history and appends events;
--   4. derived D marks follow for the (pupil, date) pairs posted (dualreg_derive_d),
--      called only where it has something to do: a school that should hold a D holds
--      no mark, or a derived mark no longer belongs.
-- Events are inserted set-based with one pg_notify per batch: the same rows and
-- wake-up that dualreg_emit makes, without a function call per mark.

-- A "YYYY-MM-DD" text as a date (years 1900-2199, as calendar.h), or NULL if it is not
-- one. Never raises, so one bad item cannot fail a batch.
CREATE FUNCTION dualreg_parse_date(p_text text) RETURNS date
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_year integer;
    v_month integer;
    v_day integer;
BEGIN
    IF p_text IS NULL OR p_text !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN
        RETURN NULL;
    END IF;
    v_year := substr(p_text, 1, 4)::integer;
    v_month := substr(p_text, 6, 2)::integer;
    v_day := substr(p_text, 9, 2)::integer;
    IF v_year NOT BETWEEN 1900 AND 2199 OR v_month NOT BETWEEN 1 AND 12 OR v_day < 1
       OR v_day > extract(day FROM make_date(v_year, v_month, 1) + interval '1 month'
                                     - interval '1 day') THEN
        RETURN NULL;
    END IF;
    RETURN make_date(v_year, v_month, v_day);
END $$;

-- One mark as the API shows it.
CREATE FUNCTION dualreg_mark_json(p_upn text, p_urn text, p_date date, p_session text,
                                  p_code text, p_minutes_late smallint, p_comment text,
                                  p_source text, p_version integer,
                                  p_recorded_at timestamptz) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_build_object('upn', p_upn, 'urn', p_urn, 'date', p_date, 'session', p_session,
                            'code', p_code, 'minutes_late', p_minutes_late,
                            'comment', p_comment, 'source', p_source, 'version', p_version,
                            'recorded_at', p_recorded_at)
$$;

-- One item of a batch after the checks: its fields, the first rule it broke (error,
-- detail), and what the plan says about its session.
CREATE TYPE dualreg_mark_item AS (
    idx           integer,   -- position in the batch, from 0
    upn           text,
    urn           text,
    date          date,
    session       text,
    code          text,
    minutes_late  smallint,
    comment       text,
    reason        text,
    error         text,      -- NULL: passed every batch-independent rule
    detail        text,
    expected_urn  text,      -- the school expecting the pupil (dual registered only)
    urns          text[],    -- the pupil's schools that day (who is told)
    conflict      boolean,   -- a real mark at the school that does not expect the pupil
    dual_day      boolean,   -- dual registered on that date
    round         integer
);

CREATE TYPE dualreg_mark_result AS (idx integer, result jsonb);

-- One session of a dual-registered pupil's day plan (dualreg_day_plan), kept for the
-- batch so that checks and derivation ask the plan once per pupil and date.
CREATE TYPE dualreg_plan_row AS (
    upn           text,
    date          date,
    session       text,
    main_urn      text,
    sub_urn       text,
    expected_urn  text,
    other_urn     text,
    other_closed  boolean
);

-- Registrations are looked up by pupil on every mark; the exclusion constraints' GiST
-- indexes answer that several times slower than a B-tree.
CREATE INDEX registrations_upn ON registrations (upn, urn);

-- The day plan (as dualreg_day_plan) of many (pupil, date) pairs at once, for the
-- sessions where the pupil is dual registered: set-based, so that a batch asks it once
-- rather than once per pupil. Pairs are given as two parallel arrays. The rule is
-- dualreg_day_plan's: the subsidiary school expects the pupil in the sessions its
-- schedule in force that day marks, the main school in every other weekday session.
CREATE FUNCTION dualreg_dual_plans(p_upns text[], p_dates date[])
RETURNS SETOF dualreg_plan_row LANGUAGE sql STABLE AS $$
  WITH q AS (
    SELECT DISTINCT u.upn, u.date
      FROM unnest(p_upns, p_dates) AS u(upn, date)
     WHERE u.upn IS NOT NULL AND u.date IS NOT NULL AND extract(isodow FROM u.date) < 6
  ), reg AS MATERIALIZED (
    SELECT q.upn, q.date, m.urn AS main_urn, s.urn AS sub_urn,
           (SELECT rs.mask FROM registration_schedules rs
             WHERE rs.registration_id = s.id AND rs.effective_from <= q.date
             ORDER BY rs.effective_from DESC LIMIT 1) AS mask
      FROM q
      JOIN registrations s
        ON s.upn = q.upn AND s.role = 'subsidiary'
       AND q.date BETWEEN s.start_date AND coalesce(s.end_date, 'infinity')
      JOIN registrations m
        ON m.upn = q.upn AND m.role = 'main'
       AND q.date BETWEEN m.start_date AND coalesce(m.end_date, 'infinity')
  ), placed AS MATERIALIZED (
    SELECT reg.upn, reg.date, x.session, reg.main_urn, reg.sub_urn,
           CASE WHEN (coalesce(reg.mask, 0) >> dualreg_session_bit(reg.date, x.session)) & 1 = 1
                THEN reg.sub_urn ELSE reg.main_urn END AS expected_urn
      FROM reg, (VALUES ('AM'), ('PM')) AS x(session)
  )
  SELECT p.upn, p.date, p.session, p.main_urn, p.sub_urn, p.expected_urn, o.other_urn,
         dualreg_closed(o.other_urn, p.date)
    FROM placed p,
         LATERAL (SELECT CASE WHEN p.expected_urn = p.main_urn THEN p.sub_urn
                              ELSE p.main_urn END AS other_urn) o
$$;

-- The rule engine. p_items: a jsonb array of {upn, urn, date, session, code,
-- minutes_late?, comment?, reason?}; p_key_id / p_key_name: who (recorded in history);
-- p_acting_urn: the only school the caller may write for (NULL: any, an admin);
-- p_source: 'api' or 'pull'. At most 1000 items (callers split larger feeds).
-- Returns {results: [{index, status, mark?, error?}], counts: {created, amended,
-- unchanged, rejected}, derived: n}. Runs in the caller's transaction.
-- Error types: invalid-item, invalid-upn, invalid-urn, invalid-date, invalid-session,
-- no-mark, invalid-minutes-late, invalid-comment, comment-too-long, invalid-reason,
-- reason-too-long, forbidden-school, unknown-school, unknown-pupil, not-a-school-day,
-- date-in-future, before-registration, not-registered, unknown-code,
-- code-not-valid-on-date, minutes-late-not-allowed, minutes-late-out-of-range,
-- d-not-expected, reason-required.
CREATE FUNCTION dualreg_ingest_marks(p_items jsonb, p_key_id bigint, p_key_name text,
                                     p_acting_urn text, p_source text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_today date := dualreg_today();
    v_now timestamptz := dualreg_now();
    v_items dualreg_mark_item[];
    v_out dualreg_mark_result[] := '{}';
    v_part dualreg_mark_result[];
    v_plans dualreg_plan_row[];
    v_rounds integer;
    v_derived integer := 0;
    v_emitted integer;
    v_any_event boolean := false;
    r record;
BEGIN
    IF p_source IS NULL OR p_source NOT IN ('api', 'pull') THEN
        RAISE EXCEPTION 'dualreg_ingest_marks: source must be api or pull, not %', p_source;
    END IF;
    IF jsonb_typeof(p_items) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'dualreg_ingest_marks: items must be a JSON array';
    END IF;

    IF jsonb_array_length(p_items) > 1000 THEN
        RAISE EXCEPTION 'dualreg_ingest_marks: at most 1000 marks per batch, not %',
            jsonb_array_length(p_items);
    END IF;

    -- 1. Lock every pupil named, in the order dualreg_derive_day locks them (so the two
    -- never wait on each other in a cycle).
    PERFORM dualreg_lock_pupil(u.upn)
       FROM (SELECT DISTINCT e->>'upn' AS upn
               FROM jsonb_array_elements(p_items) e
              WHERE jsonb_typeof(e->'upn') = 'string'
                AND e->>'upn' ~ '^[A-Z][0-9]{11}[0-9A-Z]$'
              ORDER BY 1) u;

    -- 2. The day plans of the pupils dual registered on a date the batch names, then
    -- every rule that does not depend on this batch's own writes, in one query.
    SELECT array_agg(pl)
      INTO v_plans
      FROM (SELECT array_agg(e->>'upn') AS upns,
                   array_agg(dualreg_parse_date(e->>'date')) AS dates
              FROM jsonb_array_elements(p_items) e
             WHERE jsonb_typeof(e->'upn') = 'string' AND jsonb_typeof(e->'date') = 'string'
               AND e->>'upn' ~ '^[A-Z][0-9]{11}[0-9A-Z]$') a,
           dualreg_dual_plans(a.upns, a.dates) pl;

    WITH raw AS (
        SELECT (t.o - 1)::integer AS idx, t.e
          FROM jsonb_array_elements(p_items) WITH ORDINALITY AS t(e, o)
    ), f AS (
        SELECT idx,
               jsonb_typeof(e) = 'object' AS is_object,
               CASE WHEN jsonb_typeof(e->'upn') = 'string' THEN e->>'upn' END AS upn,
               CASE WHEN jsonb_typeof(e->'urn') = 'string' THEN e->>'urn' END AS urn,
               CASE WHEN jsonb_typeof(e->'date') = 'string'
                    THEN dualreg_parse_date(e->>'date') END AS date,
               CASE WHEN jsonb_typeof(e->'session') = 'string' THEN e->>'session' END AS session,
               CASE WHEN jsonb_typeof(e->'code') = 'string' THEN e->>'code' END AS code,
               coalesce(jsonb_typeof(e->'minutes_late'), 'null') AS ml_type,
               CASE WHEN jsonb_typeof(e->'minutes_late') = 'number'
                    THEN (e->>'minutes_late')::numeric END AS ml,
               coalesce(jsonb_typeof(e->'comment'), 'null') AS comment_type,
               CASE WHEN jsonb_typeof(e->'comment') = 'string' THEN e->>'comment' END AS comment,
               coalesce(jsonb_typeof(e->'reason'), 'null') AS reason_type,
               CASE WHEN jsonb_typeof(e->'reason') = 'string' THEN e->>'reason' END AS reason
          FROM raw
    ), on_roll AS MATERIALIZED (
        -- (pupil, school, date) triples of the batch with a registration covering them:
        -- one join rather than a lookup per item.
        SELECT DISTINCT t.upn, t.urn, t.date
          FROM (SELECT DISTINCT upn, urn, date FROM f) t
          JOIN registrations rg
            ON rg.upn = t.upn AND rg.urn = t.urn
           AND t.date BETWEEN rg.start_date AND coalesce(rg.end_date, 'infinity')
    ), g AS MATERIALIZED (
        SELECT f.*,
               f.upn ~ '^[A-Z][0-9]{11}[0-9A-Z]$' AS upn_ok,
               f.urn ~ '^[0-9]{6}$' AS urn_ok,
               EXISTS (SELECT 1 FROM pupils p WHERE p.upn = f.upn) AS pupil_known,
               EXISTS (SELECT 1 FROM schools s WHERE s.urn = f.urn) AS school_known,
               o.upn IS NOT NULL AS reg_ok,
               c.code IS NOT NULL AS code_known, c.valid_from, c.valid_to
          FROM f
          LEFT JOIN attendance_codes c ON c.code = f.code
          LEFT JOIN on_roll o ON o.upn = f.upn AND o.urn = f.urn AND o.date = f.date
    ), h2 AS (
        SELECT g.*, pl.main_urn, pl.sub_urn, pl.expected_urn, pl.other_urn,
               pl.upn IS NOT NULL AS dual_day
          FROM g
          LEFT JOIN unnest(v_plans) pl
            ON pl.upn = g.upn AND pl.date = g.date AND pl.session = g.session
    ), checked AS MATERIALIZED (
        SELECT h2.*,
          CASE
            WHEN NOT is_object THEN 'invalid-item'
            WHEN upn IS NULL OR NOT upn_ok THEN 'invalid-upn'
            WHEN urn IS NULL OR NOT urn_ok THEN 'invalid-urn'
            WHEN date IS NULL THEN 'invalid-date'
            WHEN session IS NULL OR session NOT IN ('AM', 'PM') THEN 'invalid-session'
            WHEN code = '-' THEN 'no-mark'
            WHEN ml_type NOT IN ('null', 'number') OR ml <> trunc(ml) THEN 'invalid-minutes-late'
            WHEN comment_type NOT IN ('null', 'string') THEN 'invalid-comment'
            WHEN length(comment) > 1000 THEN 'comment-too-long'
            WHEN reason_type NOT IN ('null', 'string') THEN 'invalid-reason'
            WHEN length(reason) > 1000 THEN 'reason-too-long'
            WHEN p_acting_urn IS NOT NULL AND urn <> p_acting_urn THEN 'forbidden-school'
            WHEN NOT school_known THEN 'unknown-school'
            WHEN NOT pupil_known THEN 'unknown-pupil'
            WHEN extract(isodow FROM date) > 5 THEN 'not-a-school-day'
            WHEN date > v_today THEN 'date-in-future'
            WHEN NOT reg_ok AND EXISTS (SELECT 1 FROM registrations rg
                                         WHERE rg.upn = h2.upn AND rg.urn = h2.urn
                                           AND rg.start_date > h2.date)
              THEN 'before-registration'
            WHEN NOT reg_ok THEN 'not-registered'
            WHEN code IS NULL OR NOT code_known THEN 'unknown-code'
            WHEN date < valid_from OR date > valid_to THEN 'code-not-valid-on-date'
            WHEN ml IS NOT NULL AND code NOT IN ('L', 'U') THEN 'minutes-late-not-allowed'
            WHEN ml IS NOT NULL AND ml NOT BETWEEN 0 AND 600 THEN 'minutes-late-out-of-range'
            WHEN code = 'D' AND (other_urn IS NULL OR other_urn <> urn) THEN 'd-not-expected'
          END AS error
          FROM h2
    ), numbered AS (
        SELECT checked.*,
               CASE WHEN error IS NULL
                    THEN row_number() OVER (PARTITION BY error IS NULL, upn, urn, date, session
                                            ORDER BY idx)::integer END AS round
          FROM checked
    )
    SELECT array_agg(ROW(
             idx, upn, urn, date, session, code,
             CASE WHEN error IS NULL THEN ml::smallint END, comment, reason, error,
             CASE error
               WHEN 'invalid-item' THEN 'each mark must be a JSON object'
               WHEN 'invalid-upn' THEN 'upn must be a 13-character UPN'
               WHEN 'invalid-urn' THEN 'urn must be 6 digits'
               WHEN 'invalid-date' THEN 'date must be a real date written YYYY-MM-DD'
               WHEN 'invalid-session' THEN 'session must be AM or PM'
               WHEN 'no-mark' THEN '"-" means no mark yet: leave the session out instead'
               WHEN 'invalid-minutes-late' THEN 'minutes_late must be a whole number'
               WHEN 'invalid-comment' THEN 'comment must be a string'
               WHEN 'comment-too-long' THEN 'comment must be at most 1000 characters'
               WHEN 'invalid-reason' THEN 'reason must be a string'
               WHEN 'reason-too-long' THEN 'reason must be at most 1000 characters'
               WHEN 'forbidden-school' THEN format('this key may only write marks for school %s', p_acting_urn)
               WHEN 'unknown-school' THEN format('no school with URN %s', urn)
               WHEN 'unknown-pupil' THEN format('no pupil with UPN %s', upn)
               WHEN 'not-a-school-day' THEN format('%s is a %s: there are no sessions', date, trim(to_char(date, 'Day')))
               WHEN 'date-in-future' THEN format('%s is after today (%s)', date, v_today)
               WHEN 'before-registration' THEN format('the pupil is registered at %s from %s, after %s', urn,
                    (SELECT min(rg.start_date) FROM registrations rg
                      WHERE rg.upn = numbered.upn AND rg.urn = numbered.urn
                        AND rg.start_date > numbered.date), date)
               WHEN 'not-registered' THEN coalesce(
                    (SELECT format('the pupil''s registration at %s ended on %s', numbered.urn, max(rg.end_date))
                       FROM registrations rg
                      WHERE rg.upn = numbered.upn AND rg.urn = numbered.urn
                        AND rg.end_date < numbered.date
                     HAVING count(*) > 0),
                    format('the pupil is not registered at %s on %s', urn, date))
               WHEN 'unknown-code' THEN format('%s is not an attendance code', left(coalesce(code, ''), 8))
               WHEN 'code-not-valid-on-date' THEN CASE WHEN date < valid_from
                    THEN format('code %s is only valid from %s', code, valid_from)
                    ELSE format('code %s was withdrawn after %s', code, valid_to) END
               WHEN 'minutes-late-not-allowed' THEN format('minutes_late goes only with L or U, not %s', code)
               WHEN 'minutes-late-out-of-range' THEN 'minutes_late must be between 0 and 600'
               WHEN 'd-not-expected' THEN CASE WHEN NOT dual_day
                    THEN format('D is only for a dual-registered pupil; this pupil is not dual registered on %s', date)
                    ELSE format('D is only for a session the pupil is expected at the other school; %s %s is expected at %s', date, session, expected_urn) END
             END,
             expected_urn,
             CASE WHEN main_urn IS NOT NULL AND sub_urn IS NOT NULL
                  THEN ARRAY[main_urn, sub_urn] ELSE ARRAY[urn] END,
             error IS NULL AND code <> 'D' AND other_urn = urn,
             dual_day,
             round
           )::dualreg_mark_item ORDER BY idx)
      INTO v_items
      FROM numbered;

    SELECT array_agg(ROW(c.idx, jsonb_build_object('index', c.idx, 'status', 'rejected',
                         'error', jsonb_build_object('type', c.error, 'detail', c.detail)))
                     ::dualreg_mark_result)
      INTO v_part
      FROM unnest(v_items) c WHERE c.error IS NOT NULL;
    v_out := v_out || coalesce(v_part, '{}');

    -- 3. Write round by round.
    SELECT max(c.round) INTO v_rounds FROM unnest(v_items) c;
    FOR v_round IN 1 .. coalesce(v_rounds, 0) LOOP
        WITH cur AS (
            SELECT c.*, m.upn IS NOT NULL AS has_old, m.code AS old_code,
                   m.minutes_late AS old_ml, m.comment AS old_comment,
                   m.source AS old_source, m.version AS old_version,
                   m.recorded_at AS old_recorded_at
              FROM unnest(v_items) c
              LEFT JOIN marks m ON m.upn = c.upn AND m.date = c.date
                               AND m.session = c.session AND m.urn = c.urn
             WHERE c.error IS NULL AND c.round = v_round
        ), cls AS (
            SELECT cur.*,
                   CASE WHEN NOT has_old THEN 'created'
                        WHEN old_code = code AND old_ml IS NOT DISTINCT FROM minutes_late
                             AND old_comment IS NOT DISTINCT FROM comment THEN 'unchanged'
                        -- a derived D gives way to the school's own mark
                        WHEN old_source = 'derived' THEN 'created'
                        WHEN old_code <> code AND old_code <> 'N'
                             AND coalesce(btrim(reason), '') = '' THEN 'rejected'
                        ELSE 'amended' END AS status
              FROM cur
        ), w AS (
            INSERT INTO marks AS mk (upn, urn, date, session, code, minutes_late, comment,
                                     source, version, recorded_at, key_id)
            SELECT upn, urn, date, session, code, minutes_late, comment, p_source, 1, v_now,
                   p_key_id
              FROM cls WHERE status IN ('created', 'amended')
            ON CONFLICT (upn, date, session, urn) DO UPDATE
               SET code = EXCLUDED.code, minutes_late = EXCLUDED.minutes_late,
                   comment = EXCLUDED.comment, source = EXCLUDED.source,
                   version = mk.version + 1, recorded_at = EXCLUDED.recorded_at,
                   key_id = EXCLUDED.key_id
            RETURNING 1
        ), hist AS (
            INSERT INTO mark_history (upn, urn, date, session, old_code, old_minutes_late,
                                      old_comment, old_source, new_code, new_minutes_late,
                                      new_comment, new_source, reason, key_id, key_name,
                                      changed_at)
            SELECT upn, urn, date, session, old_code, old_ml, old_comment, old_source, code,
                   minutes_late, comment, p_source, nullif(btrim(reason), ''), p_key_id,
                   p_key_name, v_now
              FROM cls WHERE status IN ('created', 'amended')
             ORDER BY idx
        ), ev AS (
            INSERT INTO events (type, upn, urns, data, occurred_at)
            SELECT x.type, x.upn, x.urns, x.data, v_now
              FROM (SELECT idx, 0 AS k, 'mark.recorded' AS type, upn, urns,
                           jsonb_strip_nulls(jsonb_build_object(
                               'upn', upn, 'urn', urn, 'date', date, 'session', session,
                               'code', code, 'previous_code', old_code,
                               'minutes_late', minutes_late, 'source', p_source)) AS data
                      FROM cls WHERE status IN ('created', 'amended')
                    UNION ALL
                    SELECT idx, 1, 'mark.conflict', upn, urns,
                           jsonb_strip_nulls(jsonb_build_object(
                               'upn', upn, 'urn', urn, 'date', date, 'session', session,
                               'code', code, 'source', p_source,
                               'expected_urn', expected_urn,
                               'expected_code', (SELECT m2.code FROM marks m2
                                                  WHERE m2.upn = cls.upn AND m2.date = cls.date
                                                    AND m2.session = cls.session
                                                    AND m2.urn = cls.expected_urn)))
                      FROM cls WHERE status IN ('created', 'amended') AND conflict) x
             ORDER BY x.idx, x.k
            RETURNING 1
        )
        SELECT array_agg(ROW(cls.idx, CASE
                   WHEN cls.status = 'rejected' THEN jsonb_build_object(
                       'index', cls.idx, 'status', 'rejected', 'error', jsonb_build_object(
                           'type', 'reason-required',
                           'detail', format('changing %s to %s is an amendment: give a reason',
                                            cls.old_code, cls.code)))
                   WHEN cls.status = 'unchanged' THEN jsonb_build_object(
                       'index', cls.idx, 'status', 'unchanged', 'mark', dualreg_mark_json(
                           cls.upn, cls.urn, cls.date, cls.session, cls.old_code, cls.old_ml,
                           cls.old_comment, cls.old_source, cls.old_version,
                           cls.old_recorded_at))
                   ELSE jsonb_build_object(
                       'index', cls.idx, 'status', cls.status, 'mark', dualreg_mark_json(
                           cls.upn, cls.urn, cls.date, cls.session, cls.code,
                           cls.minutes_late, cls.comment, p_source,
                           CASE WHEN cls.has_old THEN cls.old_version + 1 ELSE 1 END, v_now))
                   END)::dualreg_mark_result),
               (SELECT count(*) FROM ev)
          INTO v_part, v_emitted
          FROM cls;
        v_out := v_out || coalesce(v_part, '{}');
        v_any_event := v_any_event OR v_emitted > 0;
    END LOOP;
    IF v_any_event THEN
        PERFORM pg_notify('dualreg_events', '');
    END IF;

    -- 4. Derived D marks follow. dualreg_derive_d is called only for the (pupil, date)
    -- pairs where it has something to do, tested with its own two conditions against
    -- the plans found above: a school that should hold a D holds no mark, or a derived
    -- mark no longer belongs (also on a day the pupil is no longer dual registered).
    FOR r IN
        SELECT DISTINCT x.upn, x.date
          FROM (SELECT pl.upn, pl.date
                  FROM unnest(v_plans) pl
                 WHERE (pl.upn, pl.date) IN (SELECT c.upn, c.date FROM unnest(v_items) c
                                              WHERE c.error IS NULL)
                   AND ((NOT pl.other_closed
                        AND NOT EXISTS (SELECT 1 FROM marks m
                                         WHERE m.upn = pl.upn AND m.date = pl.date
                                           AND m.session = pl.session
                                           AND m.urn = pl.other_urn))
                    OR EXISTS (SELECT 1 FROM marks m
                                WHERE m.upn = pl.upn AND m.date = pl.date
                                  AND m.session = pl.session AND m.source = 'derived'
                                  AND (m.urn <> pl.other_urn OR pl.other_closed)))
                UNION ALL
                SELECT c.upn, c.date
                  FROM unnest(v_items) c
                 WHERE c.error IS NULL AND NOT c.dual_day
                   AND EXISTS (SELECT 1 FROM marks m
                                WHERE m.upn = c.upn AND m.date = c.date
                                  AND m.source = 'derived')) x
         ORDER BY 1, 2
    LOOP
        v_derived := v_derived + dualreg_derive_d(r.upn, r.date, r.date);
    END LOOP;

    RETURN (SELECT jsonb_build_object(
                'results', coalesce(jsonb_agg(o.result ORDER BY o.idx), '[]'),
                'counts', jsonb_build_object(
                    'created', count(*) FILTER (WHERE o.result->>'status' = 'created'),
                    'amended', count(*) FILTER (WHERE o.result->>'status' = 'amended'),
                    'unchanged', count(*) FILTER (WHERE o.result->>'status' = 'unchanged'),
                    'rejected', count(*) FILTER (WHERE o.result->>'status' = 'rejected')),
                'derived', v_derived)
              FROM unnest(v_out) o);
END $$;

-- The history of one pupil's session at both schools, oldest first, for a caller acting
-- for p_acting_urn (NULL: an admin). NULL when the pupil is unknown or out of the
-- caller's scope (not registered at that school on that date), so callers answer 404
-- without telling the two apart.
CREATE FUNCTION dualreg_mark_history(p_upn text, p_date date, p_session text,
                                     p_acting_urn text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT CASE
    WHEN NOT EXISTS (SELECT 1 FROM pupils WHERE upn = p_upn) THEN NULL
    WHEN p_acting_urn IS NOT NULL AND NOT EXISTS (
           SELECT 1 FROM registrations rg
            WHERE rg.upn = p_upn AND rg.urn = p_acting_urn
              AND p_date BETWEEN rg.start_date AND coalesce(rg.end_date, 'infinity')) THEN NULL
    ELSE jsonb_build_object('history', coalesce((
      SELECT jsonb_agg(jsonb_build_object(
               'urn', h.urn,
               'old', CASE WHEN h.old_code IS NOT NULL THEN jsonb_build_object(
                        'code', h.old_code, 'minutes_late', h.old_minutes_late,
                        'comment', h.old_comment, 'source', h.old_source) END,
               'new', CASE WHEN h.new_code IS NOT NULL THEN jsonb_build_object(
                        'code', h.new_code, 'minutes_late', h.new_minutes_late,
                        'comment', h.new_comment, 'source', h.new_source) END,
               'reason', h.reason,
               'key', jsonb_build_object('id', h.key_id, 'name', h.key_name),
               'source', coalesce(h.new_source, h.old_source),
               'changed_at', h.changed_at) ORDER BY h.id)
        FROM mark_history h
       WHERE h.upn = p_upn AND h.date = p_date AND h.session = p_session), '[]'))
  END
$$;
