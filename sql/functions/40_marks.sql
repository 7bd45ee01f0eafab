-- Marks ingest: the rule engine behind POST /v1/marks and pulled feeds, and the history
-- read behind GET .../marks/{date}/{session}/history.
--
-- The rules are two lists, in the order they are checked: dualreg_mark_rules, the rules
-- every item is checked against before anything is written, then
-- dualreg_mark_write_rules, those about the mark stored when the item is written. Each
-- is a row per rule with its error type and, when an item breaks it, the detail; the
-- first rule an item breaks is its error. dualreg_mark_error_types() lists the types.
-- Adding or changing a rule is an edit of one row (and of the MarkError enum in
-- api/openapi.yaml, which a test compares with dualreg_mark_error_types()); a rule that
-- needs a fact the rows cannot see yet adds it to the dualreg_mark_facts type (a schema
-- step) and to the function of the same name, which gathers it.
--
-- dualreg_ingest_marks takes a whole batch as one jsonb array and answers one jsonb
-- object, so a request costs one statement however many marks it carries. Inside:
--   1. every pupil named is locked (dualreg_lock_pupil, sorted), so concurrent writers
--      for one pupil queue up and none loses another's update;
--   2. dualreg_mark_check gathers every item's facts (where the pupil is expected, from
--      the batch's day plans found in one statement; the code table by a join; pupil,
--      school and registration by an index probe each) and finds the first rule each
--      breaks among those that do not depend on the batch's own writes;
--   3. the items that passed are written in rounds: round k holds the k-th item for
--      each (pupil, school, date, session), so a batch that names a session twice sees
--      its own first write. Each round is one statement that checks the rules again
--      against the stored mark (reason-required), classifies (created, amended,
--      unchanged, rejected), upserts marks, appends mark_history and appends events;
--   4. derived D marks follow for the (pupil, date) pairs posted (dualreg_derive_d),
--      called only where it has something to do: a school that should hold a D holds
--      no mark, or a derived mark no longer belongs.
-- Events are inserted set-based, one statement per round: the same rows (and, through
-- the trigger on events, the same filing and wake-up) that dualreg_emit makes, without
-- a function call per mark. What follows a round's writes works per statement too: the
-- checks of the marks' school, code and key (dualreg_marks_refs, below) and of the
-- events' types, the absence alerts (functions/70_alerts.sql), the events' filing.
-- Every statement of the engine is planned once per connection and its plan kept (the
-- helpers it calls are SQL functions PostgreSQL inlines), and lookups are index probes
-- per item, so a small batch does not pay for planning or for scans of whole tables.

-- A "YYYY-MM-DD" text as a date (years 1900-2199, as calendar.h), or NULL if it is not
-- one. Never raises, so one bad item cannot fail a batch: the pattern admits only months
-- 01-12 and days 01-31, days up to 28 are then dates in every month, and a day from 29
-- is checked against its month's length before the text is read as a date (nested
-- CASEs, which PostgreSQL evaluates in order). One expression, so that PostgreSQL inlines
-- it into the statement that calls it.
CREATE OR REPLACE FUNCTION dualreg_parse_date(p_text text) RETURNS date
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN p_text ~ '^(19|20|21)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$'
              THEN CASE WHEN substr(p_text, 9, 2) <= '28'
                          OR substr(p_text, 9, 2)::integer <=
                             CASE WHEN substr(p_text, 6, 2) = '02' THEN
                                    CASE WHEN substr(p_text, 1, 4)::integer % 4 = 0
                                              AND (substr(p_text, 1, 4)::integer % 100 <> 0
                                                   OR substr(p_text, 1, 4)::integer % 400 = 0)
                                         THEN 29 ELSE 28 END
                                  WHEN substr(p_text, 6, 2) IN ('04', '06', '09', '11') THEN 30
                                  ELSE 31 END
                        THEN make_date(substr(p_text, 1, 4)::integer,
                                       substr(p_text, 6, 2)::integer,
                                       substr(p_text, 9, 2)::integer) END
         END
$$;

-- One mark as the marks API shows it (the reads show a shorter form,
-- dualreg_session_mark_json). json, not jsonb: the engine gathers its answer as text
-- and reads it as jsonb once. STABLE, as json_build_object is (a timestamptz's text
-- depends on the session's time zone), so that PostgreSQL inlines it.
DROP FUNCTION IF EXISTS dualreg_mark_json(text, text, date, text, text, smallint, text, text,
                                          integer, timestamptz);
CREATE FUNCTION dualreg_mark_json(p_upn text, p_urn text, p_date date,
                                  p_session text, p_code text,
                                  p_minutes_late smallint, p_comment text,
                                  p_source text, p_version integer,
                                  p_recorded_at timestamptz) RETURNS json
LANGUAGE sql STABLE AS $$
  SELECT json_build_object('upn', p_upn, 'urn', p_urn, 'date', p_date, 'session', p_session,
                           'code', p_code, 'minutes_late', p_minutes_late,
                           'comment', p_comment, 'source', p_source, 'version', p_version,
                           'recorded_at', p_recorded_at)
$$;

-- The day plan (as dualreg_day_plan) of many (pupil, date) pairs at once, for the
-- sessions where the pupil is dual registered: set-based, so that a batch asks it once
-- rather than once per pupil. Pairs are given as two parallel arrays. The rule is
-- dualreg_day_plan's: the subsidiary school expects the pupil in the sessions its
-- schedule in force that day marks, the main school in every other weekday session.
CREATE OR REPLACE FUNCTION dualreg_dual_plans(p_upns text[], p_dates date[])
RETURNS SETOF dualreg_plan_row LANGUAGE sql STABLE AS $$
  WITH q AS (
    SELECT DISTINCT u.upn, u.date
      FROM unnest(p_upns, p_dates) AS u(upn, date)
     WHERE u.upn IS NOT NULL AND u.date IS NOT NULL AND extract(isodow FROM u.date) < 6
  ), reg AS MATERIALIZED (
    -- The subsidiary and main registrations in force that day (at most one of each: the
    -- exclusion constraints), each found as the latest started on or before the date, so
    -- that a B-tree on (upn, role, start_date) answers it in order.
    SELECT q.upn, q.date, m.urn AS main_urn, s.urn AS sub_urn,
           (SELECT rs.mask FROM registration_schedules rs
             WHERE rs.registration_id = s.id AND rs.effective_from <= q.date
             ORDER BY rs.effective_from DESC LIMIT 1) AS mask
      FROM q
      JOIN LATERAL (
        SELECT r.id, r.urn FROM registrations r
         WHERE r.upn = q.upn AND r.role = 'subsidiary' AND r.start_date <= q.date
           AND q.date <= coalesce(r.end_date, 'infinity')
         ORDER BY r.start_date DESC LIMIT 1) s ON true
      JOIN LATERAL (
        SELECT r.urn FROM registrations r
         WHERE r.upn = q.upn AND r.role = 'main' AND r.start_date <= q.date
           AND q.date <= coalesce(r.end_date, 'infinity')
         ORDER BY r.start_date DESC LIMIT 1) m ON true
  ), placed AS MATERIALIZED (
    SELECT reg.upn, reg.date, x.session, reg.main_urn, reg.sub_urn,
           CASE WHEN (coalesce(reg.mask, 0) >> dualreg_session_bit(reg.date, x.session)) & 1 = 1
                THEN reg.sub_urn ELSE reg.main_urn END AS expected_urn
      FROM reg, (VALUES ('AM'), ('PM')) AS x(session)
  )
  -- whether the other school is closed: dualreg_closed (never a weekend here), written
  -- out so that it is part of this statement rather than a function called per row
  SELECT p.upn, p.date, p.session, p.main_urn, p.sub_urn, p.expected_urn, o.other_urn,
         EXISTS (SELECT 1 FROM school_closures sc
                  WHERE sc.urn = o.other_urn AND p.date BETWEEN sc.from_date AND sc.to_date)
    FROM placed p,
         LATERAL (SELECT CASE WHEN p.expected_urn = p.main_urn THEN p.sub_urn
                              ELSE p.main_urn END AS other_urn) o
$$;

-- The day plans of the pupils a batch names, on the dates it names, where they are dual
-- registered. The checks use them, and so does the derivation that follows the writes.
-- A set-returning SQL function of one SELECT, so that PostgreSQL inlines it into the
-- statement that calls it (and a PL/pgSQL caller keeps that statement's plan).
CREATE OR REPLACE FUNCTION dualreg_mark_plan_rows(p_items jsonb)
RETURNS SETOF dualreg_plan_row LANGUAGE sql STABLE AS $$
  SELECT pl.*
    FROM (SELECT array_agg(e->>'upn') AS upns,
                 array_agg(dualreg_parse_date(e->>'date')) AS dates
            FROM jsonb_array_elements(p_items) e
           WHERE jsonb_typeof(e->'upn') = 'string' AND jsonb_typeof(e->'date') = 'string'
             AND e->>'upn' ~ '^[A-Z][0-9]{11}[0-9A-Z]$') a,
         dualreg_dual_plans(a.upns, a.dates) pl
$$;

-- The same as an array (NULL when none is dual registered), as dualreg_mark_check takes
-- them.
CREATE OR REPLACE FUNCTION dualreg_mark_plans(p_items jsonb) RETURNS dualreg_plan_row[]
LANGUAGE sql STABLE AS $$
  SELECT array_agg(pl) FROM dualreg_mark_plan_rows(p_items) pl
$$;

-- The facts of every item of a batch (see the type): its fields as sent, and what the
-- database says about them (the plans looked up once for the batch, the rest by an
-- index probe per item).
-- p_plans: dualreg_mark_plans(p_items).
CREATE OR REPLACE FUNCTION dualreg_mark_facts(p_items jsonb, p_acting_urn text, p_today date,
                                              p_plans dualreg_plan_row[])
RETURNS SETOF dualreg_mark_facts LANGUAGE sql STABLE AS $$
  WITH raw AS (
    SELECT (t.o - 1)::integer AS idx, t.e
      FROM jsonb_array_elements(p_items) WITH ORDINALITY AS t(e, o)
  ), f AS MATERIALIZED (
    -- Each field read once per item, however often the lookups below use it.
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
  )
  SELECT f.idx, f.is_object, f.upn, f.urn, f.date, f.session, f.code, f.ml_type, f.ml,
         f.comment_type, f.comment, f.reason_type, f.reason, p_acting_urn, p_today,
         f.upn ~ '^[A-Z][0-9]{11}[0-9A-Z]$',
         f.urn ~ '^[0-9]{6}$',
         -- Each lookup a scalar subquery, an index probe per item, which PostgreSQL
         -- cannot turn into a scan of the whole table: a lone mark costs a few probes.
         coalesce((SELECT true FROM pupils p WHERE p.upn = f.upn), false),
         coalesce((SELECT true FROM schools s WHERE s.urn = f.urn), false),
         -- registered at the school on the date
         coalesce((SELECT true FROM registrations rg
                    WHERE rg.upn = f.upn AND rg.urn = f.urn
                      AND f.date BETWEEN rg.start_date AND coalesce(rg.end_date, 'infinity')
                    LIMIT 1), false),
         c.code IS NOT NULL, c.valid_from, c.valid_to,
         pl.upn IS NOT NULL, pl.main_urn, pl.sub_urn, pl.expected_urn, pl.other_urn
    FROM f
    LEFT JOIN attendance_codes c ON c.code = f.code
    LEFT JOIN unnest(p_plans) pl
      ON pl.upn = f.upn AND pl.date = f.date AND pl.session = f.session
$$;

-- THE RULES, in the order they are checked: one row per rule with its error type and,
-- when the item with facts f breaks it, the detail (NULL while the rule holds; never
-- NULL when it is broken). The first rule broken is the item's error. A rule whose facts
-- are missing (NULL) holds, as in a CASE, so no rule may count on the ones before it
-- having held. These are checked for the whole batch before anything is written; the
-- rules about the mark stored at the moment an item is written follow in
-- dualreg_mark_write_rules.
-- (UNION ALL rather than VALUES: PostgreSQL compiles a VALUES row's expressions again
-- on every evaluation, which made the check of a 1000-mark batch several times slower.)
CREATE OR REPLACE FUNCTION dualreg_mark_rules(f dualreg_mark_facts)
RETURNS TABLE (ord integer, type text, detail text) LANGUAGE sql STABLE AS $$
  SELECT 1, 'invalid-item',
         CASE WHEN NOT f.is_object THEN 'each mark must be a JSON object' END
  UNION ALL
  SELECT 2, 'invalid-upn',
         CASE WHEN f.upn IS NULL OR NOT f.upn_ok THEN 'upn must be a 13-character UPN' END
  UNION ALL
  SELECT 3, 'invalid-urn',
         CASE WHEN f.urn IS NULL OR NOT f.urn_ok THEN 'urn must be 6 digits' END
  UNION ALL
  SELECT 4, 'invalid-date',
         CASE WHEN f.date IS NULL THEN 'date must be a real date written YYYY-MM-DD' END
  UNION ALL
  SELECT 5, 'invalid-session',
         CASE WHEN f.session IS NULL OR f.session NOT IN ('AM', 'PM')
              THEN 'session must be AM or PM' END
  UNION ALL
  SELECT 6, 'no-mark',
         CASE WHEN f.code = '-'
              THEN '"-" means no mark yet: leave the session out instead' END
  UNION ALL
  SELECT 7, 'invalid-minutes-late',
         CASE WHEN f.ml_type NOT IN ('null', 'number') OR f.ml <> trunc(f.ml)
              THEN 'minutes_late must be a whole number' END
  UNION ALL
  SELECT 8, 'invalid-comment',
         CASE WHEN f.comment_type NOT IN ('null', 'string') THEN 'comment must be a string' END
  UNION ALL
  SELECT 9, 'comment-too-long',
         CASE WHEN length(f.comment) > 1000 THEN 'comment must be at most 1000 characters' END
  UNION ALL
  SELECT 10, 'invalid-reason',
         CASE WHEN f.reason_type NOT IN ('null', 'string') THEN 'reason must be a string' END
  UNION ALL
  SELECT 11, 'reason-too-long',
         CASE WHEN length(f.reason) > 1000 THEN 'reason must be at most 1000 characters' END
  UNION ALL
  SELECT 12, 'forbidden-school',
         CASE WHEN f.acting_urn IS NOT NULL AND f.urn <> f.acting_urn
              THEN format('this key may only write marks for school %s', f.acting_urn) END
  UNION ALL
  SELECT 13, 'unknown-school',
         CASE WHEN NOT f.school_known THEN format('no school with URN %s', f.urn) END
  UNION ALL
  -- A school's key learns nothing about pupils not on its roll: one answer whether the
  -- UPN is unknown, registered elsewhere, or at this school on other dates. Admin keys
  -- get the detailed rules that follow.
  SELECT 14, 'pupil-not-on-roll',
         CASE WHEN f.acting_urn IS NOT NULL AND NOT f.reg_ok
              THEN format('no pupil with this UPN is on the roll of %s on %s', f.urn, f.date) END
  UNION ALL
  SELECT 15, 'unknown-pupil',
         CASE WHEN NOT f.pupil_known THEN format('no pupil with UPN %s', f.upn) END
  UNION ALL
  SELECT 16, 'not-a-school-day',
         CASE WHEN extract(isodow FROM f.date) > 5
              THEN format('%s is a %s: there are no sessions', f.date,
                          trim(to_char(f.date, 'Day'))) END
  UNION ALL
  SELECT 17, 'date-in-future',
         CASE WHEN f.date > f.today THEN format('%s is after today (%s)', f.date, f.today) END
  UNION ALL
  SELECT 18, 'before-registration',
         CASE WHEN NOT f.reg_ok AND EXISTS (
                     SELECT 1 FROM registrations rg
                      WHERE rg.upn = f.upn AND rg.urn = f.urn AND rg.start_date > f.date)
              THEN format('the pupil is registered at %s from %s, after %s', f.urn,
                          (SELECT min(rg.start_date) FROM registrations rg
                            WHERE rg.upn = f.upn AND rg.urn = f.urn
                              AND rg.start_date > f.date), f.date) END
  UNION ALL
  SELECT 19, 'not-registered',
         CASE WHEN NOT f.reg_ok THEN coalesce(
                (SELECT format('the pupil''s registration at %s ended on %s', f.urn,
                               max(rg.end_date))
                   FROM registrations rg
                  WHERE rg.upn = f.upn AND rg.urn = f.urn AND rg.end_date < f.date
                 HAVING count(*) > 0),
                format('the pupil is not registered at %s on %s', f.urn, f.date)) END
  UNION ALL
  SELECT 20, 'unknown-code',
         CASE WHEN f.code IS NULL OR NOT f.code_known
              THEN format('%s is not an attendance code', left(coalesce(f.code, ''), 8)) END
  UNION ALL
  SELECT 21, 'code-not-valid-on-date',
         CASE WHEN f.date < f.valid_from
              THEN format('code %s is only valid from %s', f.code, f.valid_from)
              WHEN f.date > f.valid_to
              THEN format('code %s was withdrawn after %s', f.code, f.valid_to) END
  UNION ALL
  SELECT 22, 'minutes-late-not-allowed',
         CASE WHEN f.ml IS NOT NULL AND f.code NOT IN ('L', 'U')
              THEN format('minutes_late goes only with L or U, not %s', f.code) END
  UNION ALL
  SELECT 23, 'minutes-late-out-of-range',
         CASE WHEN f.ml IS NOT NULL AND f.ml NOT BETWEEN 0 AND 600
              THEN 'minutes_late must be between 0 and 600' END
  UNION ALL
  SELECT 24, 'd-not-expected',
         CASE WHEN f.code = 'D' AND NOT f.dual_day
              THEN format('D is only for a dual-registered pupil; this pupil is not dual '
                          'registered on %s', f.date)
              WHEN f.code = 'D' AND (f.other_urn IS NULL OR f.other_urn <> f.urn)
              THEN format('D is only for a session the pupil is expected at the other '
                          'school; %s %s is expected at %s',
                          f.date, f.session, f.expected_urn) END
$$;

-- The rules checked as an item is written (after every rule above held), against s, the
-- mark then stored for its session (NULL: none), which an earlier item of the same batch
-- may have written. Numbered after the rules above.
CREATE OR REPLACE FUNCTION dualreg_mark_write_rules(f dualreg_mark_facts, s marks)
RETURNS TABLE (ord integer, type text, detail text) LANGUAGE sql STABLE AS $$
  -- Changing a school's own mark needs a reason, unless the stored mark is a provisional
  -- N. (A derived D gives way to the school's own mark without one.)
  SELECT 25, 'reason-required',
         CASE WHEN s.code <> f.code AND s.code <> 'N' AND s.source <> 'derived'
                   AND coalesce(btrim(f.reason), '') = ''
              THEN format('changing %s to %s is an amendment: give a reason',
                          s.code, f.code) END
$$;

-- Every rule's error type, in the order they are checked: the two lists above.
CREATE OR REPLACE FUNCTION dualreg_mark_error_types()
RETURNS TABLE (ord integer, type text) LANGUAGE sql STABLE AS $$
  SELECT r.ord, r.type FROM dualreg_mark_rules(NULL::dualreg_mark_facts) r
  UNION ALL
  SELECT r.ord, r.type FROM dualreg_mark_write_rules(NULL::dualreg_mark_facts, NULL::marks) r
  ORDER BY 1
$$;

-- Retired: the first broken rule of an item is now found for a whole batch at once
-- (dualreg_mark_check, and the write rounds of dualreg_ingest_marks).
DROP FUNCTION IF EXISTS dualreg_mark_error(dualreg_mark_facts);
DROP FUNCTION IF EXISTS dualreg_mark_write_error(dualreg_mark_facts, marks);

-- Every item of a batch with its facts, the first rule it breaks before anything is
-- written (error NULL: none), who is told about it, and its write round.
-- p_plans: dualreg_mark_plans(p_items). Tests call it to check the rules in SQL.
-- Each item's first broken rule is found with one sort over the broken rules of the
-- whole batch (usually none), not a sort per item.
CREATE OR REPLACE FUNCTION dualreg_mark_check(p_items jsonb, p_acting_urn text, p_today date,
                                              p_plans dualreg_plan_row[])
RETURNS SETOF dualreg_mark_item LANGUAGE sql STABLE AS $$
  WITH x AS MATERIALIZED (
    SELECT f.* FROM dualreg_mark_facts(p_items, p_acting_urn, p_today, p_plans) f
  ), e AS (
    -- The rules see the facts as ROW(x.*), built from x's columns: PostgreSQL then reads
    -- each fact a rule names straight from its column instead of taking a stored row
    -- value apart once per use.
    SELECT DISTINCT ON (x.idx) x.idx, r.type, r.detail
      FROM x, LATERAL dualreg_mark_rules(ROW(x.*)::dualreg_mark_facts) r
     WHERE r.detail IS NOT NULL
     ORDER BY x.idx, r.ord
  ), c AS (
    SELECT x.*, ROW(x.*)::dualreg_mark_facts AS f, e.type AS error, e.detail AS error_detail
      FROM x LEFT JOIN e ON e.idx = x.idx
  )
  -- The columns of dualreg_mark_item one by one (not ROW(...)): so PostgreSQL can inline
  -- the function into the statement that calls it.
  SELECT c.idx, c.upn, c.urn, c.date, c.session, c.code,
         CASE WHEN c.error IS NULL THEN c.ml::smallint END, c.comment, c.reason,
         c.error, c.error_detail, c.expected_urn,
         CASE WHEN c.main_urn IS NOT NULL AND c.sub_urn IS NOT NULL
              THEN ARRAY[c.main_urn, c.sub_urn] ELSE ARRAY[c.urn] END,
         c.error IS NULL AND c.code <> 'D' AND c.other_urn = c.urn,
         c.dual_day,
         CASE WHEN c.error IS NULL
              THEN row_number() OVER (PARTITION BY c.error IS NULL, c.upn, c.urn, c.date,
                                                   c.session
                                      ORDER BY c.idx)::integer END,
         c.f
    FROM c
   ORDER BY c.idx
$$;

-- The rule engine. p_items: a jsonb array of {upn, urn, date, session, code,
-- minutes_late?, comment?, reason?}; p_key_id / p_key_name: who (recorded in history);
-- p_acting_urn: the only school the caller may write for (NULL: any, an admin);
-- p_source: 'api' (the JSON API with a key), 'web' (the JSON API from the staff web app,
-- signed in by its session) or 'pull'. At most 1000 items (callers split larger feeds).
-- Returns {results: [{index, status, mark?, error?}], counts: {created, amended,
-- unchanged, rejected}, derived: n}, an error's type being one of dualreg_mark_error_types().
-- Runs in the caller's transaction.
-- Every statement is written here or in SQL functions PostgreSQL inlines, so that a
-- connection plans each once and keeps the plan: a batch of one mark costs what its
-- work costs, not a planning of the rule engine.
CREATE OR REPLACE FUNCTION dualreg_ingest_marks(p_items jsonb, p_key_id bigint,
                                                p_key_name text, p_acting_urn text,
                                                p_source text)
RETURNS jsonb LANGUAGE plpgsql
-- Plans made once per connection (a custom plan per call would plan the statements below
-- on every batch: most of a lone mark's cost).
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_today date := dualreg_today();
    v_now timestamptz := dualreg_now();
    v_items dualreg_mark_item[];
    -- The answer's results as they are made: item indexes and their json, in step.
    v_idx integer[];
    v_res json[];
    v_part_idx integer[];
    v_part_res json[];
    v_plans dualreg_plan_row[];
    v_rounds integer;
    v_created integer := 0;
    v_amended integer := 0;
    v_unchanged integer := 0;
    v_rejected integer := 0;
    v_c integer;
    v_a integer;
    v_u integer;
    v_r integer;
    v_derived integer := 0;
    r record;
BEGIN
    IF p_source IS NULL OR p_source NOT IN ('api', 'web', 'pull') THEN
        RAISE EXCEPTION 'dualreg_ingest_marks: source must be api, web or pull, not %',
            p_source;
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
    -- every rule that does not depend on this batch's own writes; the items rejected
    -- there are answered at once.
    SELECT array_agg(pl) INTO v_plans FROM dualreg_mark_plan_rows(p_items) pl;
    SELECT array_agg(c ORDER BY c.idx), max(c.round),
           array_agg(c.idx) FILTER (WHERE c.error IS NOT NULL),
           array_agg(json_build_object('index', c.idx, 'status', 'rejected',
                         'error', json_build_object('type', c.error, 'detail', c.detail)))
               FILTER (WHERE c.error IS NOT NULL),
           count(*) FILTER (WHERE c.error IS NOT NULL)
      INTO v_items, v_rounds, v_idx, v_res, v_rejected
      FROM dualreg_mark_check(p_items, p_acting_urn, v_today, v_plans) c;
    v_idx := coalesce(v_idx, '{}');
    v_res := coalesce(v_res, '{}');

    -- 3. Write round by round.
    FOR v_round IN 1 .. coalesce(v_rounds, 0) LOOP
        WITH cur AS MATERIALIZED (
            -- Each item with the mark stored for its session, and the first rule about
            -- that mark it breaks (dualreg_mark_write_rules; none without a stored mark).
            SELECT DISTINCT ON (c.idx)
                   c.*, m.upn IS NOT NULL AS has_old, m.code AS old_code,
                   m.minutes_late AS old_ml, m.comment AS old_comment,
                   m.source AS old_source, m.version AS old_version,
                   m.recorded_at AS old_recorded_at,
                   wr.type AS write_error, wr.detail AS write_detail
              FROM unnest(v_items) c
              LEFT JOIN marks m ON m.upn = c.upn AND m.date = c.date
                               AND m.session = c.session AND m.urn = c.urn
              LEFT JOIN LATERAL dualreg_mark_write_rules(c.facts, m) wr
                ON m.upn IS NOT NULL AND wr.detail IS NOT NULL
             WHERE c.error IS NULL AND c.round = v_round
             ORDER BY c.idx, wr.ord
        ), cls AS (
            SELECT cur.*,
                   CASE WHEN NOT has_old THEN 'created'
                        WHEN old_code = code AND old_ml IS NOT DISTINCT FROM minutes_late
                             AND old_comment IS NOT DISTINCT FROM comment THEN 'unchanged'
                        -- a derived D gives way to the school's own mark
                        WHEN old_source = 'derived' THEN 'created'
                        WHEN write_error IS NOT NULL THEN 'rejected'
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
        )
        SELECT array_agg(cls.idx),
               array_agg(CASE
                   WHEN cls.status = 'rejected' THEN json_build_object(
                       'index', cls.idx, 'status', 'rejected', 'error', json_build_object(
                           'type', cls.write_error, 'detail', cls.write_detail))
                   WHEN cls.status = 'unchanged' THEN json_build_object(
                       'index', cls.idx, 'status', 'unchanged', 'mark', dualreg_mark_json(
                           cls.upn, cls.urn, cls.date, cls.session, cls.old_code, cls.old_ml,
                           cls.old_comment, cls.old_source, cls.old_version,
                           cls.old_recorded_at))
                   ELSE json_build_object(
                       'index', cls.idx, 'status', cls.status, 'mark', dualreg_mark_json(
                           cls.upn, cls.urn, cls.date, cls.session, cls.code,
                           cls.minutes_late, cls.comment, p_source,
                           CASE WHEN cls.has_old THEN cls.old_version + 1 ELSE 1 END, v_now))
                   END),
               count(*) FILTER (WHERE cls.status = 'created'),
               count(*) FILTER (WHERE cls.status = 'amended'),
               count(*) FILTER (WHERE cls.status = 'unchanged'),
               count(*) FILTER (WHERE cls.status = 'rejected')
          INTO v_part_idx, v_part_res, v_c, v_a, v_u, v_r
          FROM cls;
        v_idx := v_idx || coalesce(v_part_idx, '{}');
        v_res := v_res || coalesce(v_part_res, '{}');
        v_created := v_created + v_c;
        v_amended := v_amended + v_a;
        v_unchanged := v_unchanged + v_u;
        v_rejected := v_rejected + v_r;
    END LOOP;

    -- 4. Derived D marks follow. dualreg_derive_d is called only for the (pupil, date)
    -- pairs where it has something to do, tested with its own two conditions against
    -- the plans found above (one look at the session's marks at both schools): a school
    -- that should hold a D holds no mark, or a derived mark no longer belongs (also on a
    -- day the pupil is no longer dual registered).
    FOR r IN
        SELECT DISTINCT x.upn, x.date
          FROM (SELECT pl.upn, pl.date
                  FROM unnest(v_plans) pl
                 WHERE (pl.upn, pl.date) IN (SELECT c.upn, c.date FROM unnest(v_items) c
                                              WHERE c.error IS NULL)
                   AND (SELECT (NOT pl.other_closed
                                AND NOT coalesce(bool_or(m.urn = pl.other_urn), false))
                               OR coalesce(bool_or(m.source = 'derived'
                                                   AND (m.urn <> pl.other_urn
                                                        OR pl.other_closed)), false)
                          FROM marks m
                         WHERE m.upn = pl.upn AND m.date = pl.date
                           AND m.session = pl.session)
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

    RETURN jsonb_build_object(
        'results', coalesce((SELECT json_agg(o.res ORDER BY o.idx)
                               FROM unnest(v_idx, v_res) AS o(idx, res))::jsonb, '[]'),
        'counts', jsonb_build_object('created', v_created, 'amended', v_amended,
                                     'unchanged', v_unchanged, 'rejected', v_rejected),
        'derived', v_derived);
END $$;

-- A mark's school, code and key must exist: checked once per statement over the rows it
-- inserted or updated (new_marks) rather than by a foreign key's check per row (schema
-- step 026; the pupil keeps its foreign key). As a foreign key does, it first takes a
-- KEY SHARE lock on each school, code and key named, so that a concurrent delete of one
-- waits for this transaction and then finds these marks (dualreg_marks_refs_guard).
CREATE OR REPLACE FUNCTION dualreg_marks_refs() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_marks) THEN
        RETURN NULL; -- (an upsert fires the update trigger too, often for no rows)
    END IF;
    PERFORM 1 FROM schools s WHERE s.urn IN (SELECT n.urn FROM new_marks n) FOR KEY SHARE;
    PERFORM 1 FROM attendance_codes c WHERE c.code IN (SELECT n.code FROM new_marks n)
        FOR KEY SHARE;
    PERFORM 1 FROM api_keys k WHERE k.id IN (SELECT n.key_id FROM new_marks n)
        FOR KEY SHARE;
    SELECT x.* INTO r FROM (
        SELECT 'marks_urn_fkey' AS name, 'urn' AS col, n.urn AS val, 'schools' AS tab
          FROM new_marks n WHERE NOT EXISTS (SELECT 1 FROM schools s WHERE s.urn = n.urn)
        UNION ALL
        SELECT 'marks_code_fkey', 'code', n.code, 'attendance_codes'
          FROM new_marks n
         WHERE NOT EXISTS (SELECT 1 FROM attendance_codes c WHERE c.code = n.code)
        UNION ALL
        SELECT 'marks_key_id_fkey', 'key_id', n.key_id::text, 'api_keys'
          FROM new_marks n
         WHERE n.key_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM api_keys k WHERE k.id = n.key_id)) x
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'insert or update on table "marks" violates foreign key constraint "%"',
                r.name
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = r.name, TABLE = 'marks',
                  DETAIL = format('Key (%s)=(%s) is not present in table "%s".', r.col,
                                  r.val, r.tab);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER marks_refs_inserted
    AFTER INSERT ON marks REFERENCING NEW TABLE AS new_marks
    FOR EACH STATEMENT EXECUTE FUNCTION dualreg_marks_refs();
CREATE OR REPLACE TRIGGER marks_refs_updated
    AFTER UPDATE ON marks REFERENCING NEW TABLE AS new_marks
    FOR EACH STATEMENT EXECUTE FUNCTION dualreg_marks_refs();

-- A school, code or key that a mark names cannot be deleted, nor its key changed, nor
-- attendance_codes emptied while marks exist, as with the foreign keys this replaces.
-- dualreg itself never deletes any of them. TG_ARGV[0]: the column of marks that names
-- the table's key ('urn', 'code' or 'key_id').
CREATE OR REPLACE FUNCTION dualreg_marks_refs_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_key text;
    v_name text := 'marks_' || TG_ARGV[0] || '_fkey';
    v_col text := CASE TG_ARGV[0] WHEN 'key_id' THEN 'id' ELSE TG_ARGV[0] END;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        IF EXISTS (SELECT 1 FROM marks) THEN
            RAISE EXCEPTION 'cannot truncate %: marks refer to it', TG_TABLE_NAME
                USING ERRCODE = 'foreign_key_violation', CONSTRAINT = v_name;
        END IF;
        RETURN NULL;
    END IF;
    -- (EXECUTE: the column differs by table)
    IF TG_LEVEL = 'ROW' THEN
        -- an update that changed the key (the trigger's WHEN)
        EXECUTE format('SELECT $1.%1$I::text FROM marks m WHERE m.%2$I = $1.%1$I LIMIT 1',
                       v_col, TG_ARGV[0]) INTO v_key USING OLD;
    ELSE
        EXECUTE format('SELECT o.%1$I::text FROM old_rows o'
                       ' WHERE EXISTS (SELECT 1 FROM marks m WHERE m.%2$I = o.%1$I) LIMIT 1',
                       v_col, TG_ARGV[0]) INTO v_key;
    END IF;
    IF v_key IS NOT NULL THEN
        RAISE EXCEPTION 'update or delete on table "%" violates foreign key constraint "%" on table "marks"',
                TG_TABLE_NAME, v_name
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = v_name,
                  TABLE = TG_TABLE_NAME,
                  DETAIL = format('Key (%s)=(%s) is still referenced from table "marks".',
                                  v_col, v_key);
    END IF;
    RETURN NULL;
END $$;

-- (updates: a row trigger whose WHEN, evaluated without calling the function, passes only
-- the rare update that changes the key; schools are updated often, their keys never)
CREATE OR REPLACE TRIGGER schools_marks_deleted
    AFTER DELETE ON schools REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION dualreg_marks_refs_guard('urn');
CREATE OR REPLACE TRIGGER schools_marks_updated
    AFTER UPDATE OF urn ON schools FOR EACH ROW WHEN (OLD.urn IS DISTINCT FROM NEW.urn)
    EXECUTE FUNCTION dualreg_marks_refs_guard('urn');
CREATE OR REPLACE TRIGGER attendance_codes_marks_deleted
    AFTER DELETE ON attendance_codes REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION dualreg_marks_refs_guard('code');
CREATE OR REPLACE TRIGGER attendance_codes_marks_updated
    AFTER UPDATE OF code ON attendance_codes FOR EACH ROW WHEN (OLD.code IS DISTINCT FROM NEW.code)
    EXECUTE FUNCTION dualreg_marks_refs_guard('code');
CREATE OR REPLACE TRIGGER api_keys_marks_deleted
    AFTER DELETE ON api_keys REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION dualreg_marks_refs_guard('key_id');
CREATE OR REPLACE TRIGGER api_keys_marks_updated
    AFTER UPDATE OF id ON api_keys FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION dualreg_marks_refs_guard('key_id');
CREATE OR REPLACE TRIGGER attendance_codes_marks_truncated
    BEFORE TRUNCATE ON attendance_codes
    FOR EACH STATEMENT EXECUTE FUNCTION dualreg_marks_refs_guard('code');

-- The history of one pupil's session at both schools, oldest first, for a caller acting
-- for p_acting_urn (NULL: an admin). NULL when the pupil is unknown or out of the
-- caller's scope (not registered at that school on that date), so callers answer 404
-- without telling the two apart.
CREATE OR REPLACE FUNCTION dualreg_mark_history(p_upn text, p_date date, p_session text,
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
