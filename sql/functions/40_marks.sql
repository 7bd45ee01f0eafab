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
--   2. dualreg_mark_check gathers every item's facts in a few set-based joins (pupil,
--      school, registration, code table, where the pupil is expected) and finds the
--      first rule each breaks among those that do not depend on the batch's own writes;
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
-- a function call per mark.

-- A "YYYY-MM-DD" text as a date (years 1900-2199, as calendar.h), or NULL if it is not
-- one. Never raises, so one bad item cannot fail a batch.
CREATE OR REPLACE FUNCTION dualreg_parse_date(p_text text) RETURNS date
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

-- One mark as the marks API shows it (the reads show a shorter form,
-- dualreg_session_mark_json).
CREATE OR REPLACE FUNCTION dualreg_mark_json(p_upn text, p_urn text, p_date date,
                                             p_session text, p_code text,
                                             p_minutes_late smallint, p_comment text,
                                             p_source text, p_version integer,
                                             p_recorded_at timestamptz) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_build_object('upn', p_upn, 'urn', p_urn, 'date', p_date, 'session', p_session,
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

-- The day plans of the pupils a batch names, on the dates it names, where they are dual
-- registered (NULL when none is). The checks use them, and so does the derivation that
-- follows the writes.
CREATE OR REPLACE FUNCTION dualreg_mark_plans(p_items jsonb) RETURNS dualreg_plan_row[]
LANGUAGE sql STABLE AS $$
  SELECT array_agg(pl)
    FROM (SELECT array_agg(e->>'upn') AS upns,
                 array_agg(dualreg_parse_date(e->>'date')) AS dates
            FROM jsonb_array_elements(p_items) e
           WHERE jsonb_typeof(e->'upn') = 'string' AND jsonb_typeof(e->'date') = 'string'
             AND e->>'upn' ~ '^[A-Z][0-9]{11}[0-9A-Z]$') a,
         dualreg_dual_plans(a.upns, a.dates) pl
$$;

-- The facts of every item of a batch (see the type): its fields as sent, and what the
-- database says about them, each looked up once for the batch rather than per item.
-- p_plans: dualreg_mark_plans(p_items).
CREATE OR REPLACE FUNCTION dualreg_mark_facts(p_items jsonb, p_acting_urn text, p_today date,
                                              p_plans dualreg_plan_row[])
RETURNS SETOF dualreg_mark_facts LANGUAGE sql STABLE AS $$
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
  )
  SELECT f.idx, f.is_object, f.upn, f.urn, f.date, f.session, f.code, f.ml_type, f.ml,
         f.comment_type, f.comment, f.reason_type, f.reason, p_acting_urn, p_today,
         f.upn ~ '^[A-Z][0-9]{11}[0-9A-Z]$',
         f.urn ~ '^[0-9]{6}$',
         EXISTS (SELECT 1 FROM pupils p WHERE p.upn = f.upn),
         EXISTS (SELECT 1 FROM schools s WHERE s.urn = f.urn),
         o.upn IS NOT NULL,
         c.code IS NOT NULL, c.valid_from, c.valid_to,
         pl.upn IS NOT NULL, pl.main_urn, pl.sub_urn, pl.expected_urn, pl.other_urn
    FROM f
    LEFT JOIN attendance_codes c ON c.code = f.code
    LEFT JOIN on_roll o ON o.upn = f.upn AND o.urn = f.urn AND o.date = f.date
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

-- The first rule the item with facts f breaks before anything is written, or no row.
CREATE OR REPLACE FUNCTION dualreg_mark_error(f dualreg_mark_facts)
RETURNS TABLE (type text, detail text) LANGUAGE sql STABLE AS $$
  SELECT r.type, r.detail FROM dualreg_mark_rules(f) r
   WHERE r.detail IS NOT NULL ORDER BY r.ord LIMIT 1
$$;

-- The first rule the item breaks as it is written over the stored mark s, or no row.
CREATE OR REPLACE FUNCTION dualreg_mark_write_error(f dualreg_mark_facts, s marks)
RETURNS TABLE (type text, detail text) LANGUAGE sql STABLE AS $$
  SELECT r.type, r.detail FROM dualreg_mark_write_rules(f, s) r
   WHERE r.detail IS NOT NULL ORDER BY r.ord LIMIT 1
$$;

-- Every item of a batch with its facts, the first rule it breaks before anything is
-- written (error NULL: none), who is told about it, and its write round.
-- p_plans: dualreg_mark_plans(p_items). Tests call it to check the rules in SQL.
CREATE OR REPLACE FUNCTION dualreg_mark_check(p_items jsonb, p_acting_urn text, p_today date,
                                              p_plans dualreg_plan_row[])
RETURNS SETOF dualreg_mark_item LANGUAGE sql STABLE AS $$
  -- The columns of dualreg_mark_item one by one (not ROW(...)): so PostgreSQL can inline
  -- the function into the statement that calls it.
  SELECT f.idx, f.upn, f.urn, f.date, f.session, f.code,
         CASE WHEN e.type IS NULL THEN f.ml::smallint END, f.comment, f.reason,
         e.type, e.detail, f.expected_urn,
         CASE WHEN f.main_urn IS NOT NULL AND f.sub_urn IS NOT NULL
              THEN ARRAY[f.main_urn, f.sub_urn] ELSE ARRAY[f.urn] END,
         e.type IS NULL AND f.code <> 'D' AND f.other_urn = f.urn,
         f.dual_day,
         CASE WHEN e.type IS NULL
              THEN row_number() OVER (PARTITION BY e.type IS NULL, f.upn, f.urn, f.date,
                                                   f.session
                                      ORDER BY f.idx)::integer END,
         f
    FROM dualreg_mark_facts(p_items, p_acting_urn, p_today, p_plans) f
    LEFT JOIN LATERAL dualreg_mark_error(f) e ON true
   ORDER BY f.idx
$$;

-- The rule engine. p_items: a jsonb array of {upn, urn, date, session, code,
-- minutes_late?, comment?, reason?}; p_key_id / p_key_name: who (recorded in history);
-- p_acting_urn: the only school the caller may write for (NULL: any, an admin);
-- p_source: 'api' (the JSON API with a key), 'web' (the JSON API from the staff web app,
-- signed in by its session) or 'pull'. At most 1000 items (callers split larger feeds).
-- Returns {results: [{index, status, mark?, error?}], counts: {created, amended,
-- unchanged, rejected}, derived: n}, an error's type being one of dualreg_mark_error_types().
-- Runs in the caller's transaction.
CREATE OR REPLACE FUNCTION dualreg_ingest_marks(p_items jsonb, p_key_id bigint,
                                                p_key_name text, p_acting_urn text,
                                                p_source text)
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
    -- every rule that does not depend on this batch's own writes.
    v_plans := dualreg_mark_plans(p_items);
    SELECT array_agg(c ORDER BY c.idx)
      INTO v_items
      FROM dualreg_mark_check(p_items, p_acting_urn, v_today, v_plans) c;

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
                   m.recorded_at AS old_recorded_at, m AS stored
              FROM unnest(v_items) c
              LEFT JOIN marks m ON m.upn = c.upn AND m.date = c.date
                               AND m.session = c.session AND m.urn = c.urn
             WHERE c.error IS NULL AND c.round = v_round
        ), cls AS (
            -- The rules about the stored mark (dualreg_mark_write_rules).
            SELECT cur.*, e.type AS write_error, e.detail AS write_detail,
                   CASE WHEN NOT has_old THEN 'created'
                        WHEN old_code = code AND old_ml IS NOT DISTINCT FROM minutes_late
                             AND old_comment IS NOT DISTINCT FROM comment THEN 'unchanged'
                        -- a derived D gives way to the school's own mark
                        WHEN old_source = 'derived' THEN 'created'
                        WHEN e.type IS NOT NULL THEN 'rejected'
                        ELSE 'amended' END AS status
              FROM cur
              LEFT JOIN LATERAL dualreg_mark_write_error(cur.facts, cur.stored) e ON true
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
                           'type', cls.write_error, 'detail', cls.write_detail))
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
    END LOOP;

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
