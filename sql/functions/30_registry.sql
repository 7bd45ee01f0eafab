-- The registry: schools, their closures, pupils and registrations as the API shows and
-- changes them. Each write the API offers is one function here, called inside the
-- request's transaction, so the rules, the event and the derived D marks that follow
-- a change commit together.
--
-- Functions refuse bad requests with dualreg_fail(): SQLSTATE class "DR" followed by
-- the HTTP status ("DR404", "DR409", "DR422", "DR403"), the problem slug as the message,
-- a readable detail and, as the hint, the JSON pointers of the offending request fields
-- (one per line). The daemon turns these into problem+json replies.
--
-- p_key_urn is the school a school key acts for, or NULL for an admin key.

CREATE OR REPLACE FUNCTION dualreg_fail(p_status integer, p_slug text, p_detail text,
                                        p_pointers text DEFAULT '') RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'DR' || p_status::text, MESSAGE = p_slug,
                          DETAIL = p_detail, HINT = coalesce(p_pointers, '');
END $$;

-- {"mon":["AM","PM"],"tue":[],...} for a schedule mask (see registration_schedules).
CREATE OR REPLACE FUNCTION dualreg_schedule_json(p_mask integer) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_object_agg(d.name, coalesce(
           (SELECT jsonb_agg(s.session ORDER BY s.bit)
              FROM (VALUES ('AM', 0), ('PM', 1)) AS s(session, bit)
             WHERE (p_mask >> (d.i * 2 + s.bit)) & 1 = 1), '[]'::jsonb))
    FROM (VALUES (0, 'mon'), (1, 'tue'), (2, 'wed'), (3, 'thu'), (4, 'fri')) AS d(i, name)
$$;

-- A school as the API shows it, with its feed settings and state (never the token).
CREATE OR REPLACE FUNCTION dualreg_school_json(s schools) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
           'urn', s.urn, 'laestab', s.laestab, 'name', s.name, 'kind', s.kind,
           'register_close', jsonb_build_object('am', to_char(s.am_close, 'HH24:MI'),
                                                'pm', to_char(s.pm_close, 'HH24:MI')),
           'pull', CASE WHEN s.pull_url IS NOT NULL THEN jsonb_build_object(
                     'url', s.pull_url, 'interval', s.pull_interval_s,
                     'token_set', s.pull_token IS NOT NULL) END,
           'pull_private_hosts', to_jsonb(s.pull_private_hosts),
           'created_at', s.created_at, 'updated_at', s.updated_at)
$$;

CREATE OR REPLACE FUNCTION dualreg_pupil_json(p pupils) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('upn', p.upn, 'given_name', p.given_name,
                            'family_name', p.family_name, 'date_of_birth', p.date_of_birth,
                            'created_at', p.created_at)
$$;

-- A registration's pending change as the API shows it (NULL: none): the end date and
-- schedule it would give, and whose decision it awaits until when.
CREATE OR REPLACE FUNCTION dualreg_registration_change_json(p_id bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
           'end_date', CASE WHEN c.end_date_set THEN c.end_date ELSE r.end_date END,
           'schedule', CASE WHEN c.mask IS NOT NULL THEN dualreg_schedule_json(c.mask) END,
           'effective_from', c.effective_from,
           'requested_by', c.requested_by, 'awaiting', c.counterpart_urn,
           'expires_at', c.expires_at)
    FROM registration_changes c JOIN registration_records r ON r.id = c.registration_id
   WHERE c.registration_id = p_id AND c.state = 'pending'
$$;

-- A registration in any state with its school's name, its schedule in force (today, or
-- on its start date if that is later; null for a main registration), every schedule
-- version, its state (status) and the consent it awaits.
CREATE OR REPLACE FUNCTION dualreg_registration_json(p_id bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
           'id', r.id, 'upn', r.upn, 'urn', r.urn,
           'school_name', (SELECT sc.name FROM schools sc WHERE sc.urn = r.urn),
           'role', r.role, 'start_date', r.start_date, 'end_date', r.end_date,
           'status', r.state, 'requested_by', r.requested_by,
           'awaiting', CASE WHEN r.state = 'pending' THEN r.counterpart_urn END,
           'expires_at', CASE WHEN r.state = 'pending' THEN r.expires_at END,
           'decided_at', r.decided_at, 'decision_reason', r.decision_reason,
           'pending_change', dualreg_registration_change_json(r.id),
           'schedule', (SELECT dualreg_schedule_json(rs.mask) FROM registration_schedules rs
                         WHERE rs.registration_id = r.id
                           AND rs.effective_from <= greatest(dualreg_today(), r.start_date)
                         ORDER BY rs.effective_from DESC LIMIT 1),
           'schedules', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                            'effective_from', rs.effective_from,
                                            'schedule', dualreg_schedule_json(rs.mask))
                                          ORDER BY rs.effective_from)
                                    FROM registration_schedules rs
                                   WHERE rs.registration_id = r.id), '[]'::jsonb),
           'created_at', r.created_at, 'updated_at', r.updated_at)
    FROM registration_records r WHERE r.id = p_id
$$;

-- The data of a registration event: the registration without its school's name, its
-- history of schedules, its timestamps and its consent details.
CREATE OR REPLACE FUNCTION dualreg_registration_event_data(p_id bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT dualreg_registration_json(p_id) - 'schedules' - 'created_at' - 'updated_at'
         - 'school_name'
         - 'requested_by' - 'awaiting' - 'expires_at' - 'decided_at' - 'decision_reason'
         - 'pending_change'
$$;

-- DATA BY PERIOD: the periods of a pupil's data a key may see. An admin key: all of
-- it. A school key: the periods of its own registrations of the pupil in force (past,
-- present or future). Everything a school reads of a pupil is bounded by these.
CREATE OR REPLACE FUNCTION dualreg_key_periods(p_upn text, p_key_urn text)
RETURNS TABLE (from_date date, to_date date) LANGUAGE sql STABLE AS $$
  SELECT '-infinity'::date, 'infinity'::date WHERE p_key_urn IS NULL
  UNION ALL
  SELECT g.start_date, coalesce(g.end_date, 'infinity') FROM registrations g
   WHERE p_key_urn IS NOT NULL AND g.upn = p_upn AND g.urn = p_key_urn
$$;

-- Whether a key may read a pupil at all: it has a period (dualreg_key_periods): admin,
-- or the pupil is, was or will be on its school's roll by a registration in force.
CREATE OR REPLACE FUNCTION dualreg_pupil_visible(p_upn text, p_key_urn text) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM dualreg_key_periods(p_upn, p_key_urn))
$$;

-- Whether a key may see registration p_id: an admin; the school it is at (in any
-- state); or a school with a period (dualreg_key_periods) the registration, in force,
-- overlaps. Anything else is 404 to that key.
CREATE OR REPLACE FUNCTION dualreg_registration_visible(p_id bigint, p_key_urn text)
RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT p_key_urn IS NULL OR EXISTS (
    SELECT 1 FROM registration_records g
     WHERE g.id = p_id
       AND (g.urn = p_key_urn
            OR (g.state = 'in_force' AND EXISTS (
                  SELECT 1 FROM dualreg_key_periods(g.upn, p_key_urn) k
                   WHERE g.start_date <= k.to_date
                     AND coalesce(g.end_date, 'infinity') >= k.from_date))))
$$;

-- Another school's registration as a school key sees it: only [p_from, p_to], the
-- period it shares with one of the key's periods, with the schedule versions of that
-- period (the one in force at its start shown from its start). A pending change shows
-- only to the schools it concerns.
CREATE OR REPLACE FUNCTION dualreg_registration_clipped_json(p_id bigint, p_from date,
                                                             p_to date, p_key_urn text)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT dualreg_registration_json(r.id) || jsonb_build_object(
           'start_date', c.lo,
           'end_date', nullif(c.hi, 'infinity'::date),
           'schedule', (SELECT dualreg_schedule_json(rs.mask) FROM registration_schedules rs
                         WHERE rs.registration_id = r.id
                           AND rs.effective_from <= least(greatest(dualreg_today(), c.lo), c.hi)
                         ORDER BY rs.effective_from DESC LIMIT 1),
           'schedules', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                            'effective_from', greatest(v.effective_from, c.lo),
                                            'schedule', dualreg_schedule_json(v.mask))
                                          ORDER BY v.effective_from)
                                    FROM (SELECT rs.effective_from, rs.mask,
                                                 lead(rs.effective_from)
                                                   OVER (ORDER BY rs.effective_from) AS next_from
                                            FROM registration_schedules rs
                                           WHERE rs.registration_id = r.id) v
                                   WHERE v.effective_from <= c.hi
                                     AND coalesce(v.next_from, 'infinity') > c.lo), '[]'::jsonb),
           'pending_change', (SELECT dualreg_registration_change_json(r.id)
                                WHERE EXISTS (SELECT 1 FROM registration_changes x
                                               WHERE x.registration_id = r.id
                                                 AND x.state = 'pending'
                                                 AND p_key_urn IN (x.requested_by,
                                                                   x.counterpart_urn))))
    FROM registration_records r,
         LATERAL (SELECT greatest(r.start_date, p_from) AS lo,
                         least(coalesce(r.end_date, 'infinity'), p_to) AS hi) c
   WHERE r.id = p_id
$$;

-- GET /v1/pupils/{upn}/registrations (NULL when the key may not read the pupil). An
-- admin key: every registration in every state. A school key: those at its school in
-- any state, those it asked for that are not in force, the requests awaiting its
-- decision, and other schools' registrations in force only where they overlap one of
-- its periods, clipped to the overlap (one item per overlap).
CREATE OR REPLACE FUNCTION dualreg_pupil_registrations_json(p_upn text, p_key_urn text)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('upn', p.upn, 'registrations', coalesce((
           SELECT jsonb_agg(x.j ORDER BY x.start_date, x.id) FROM (
             SELECT g.id, g.start_date, dualreg_registration_json(g.id) AS j
               FROM registration_records g
              WHERE g.upn = p.upn
                AND (p_key_urn IS NULL OR g.urn = p_key_urn
                     OR (g.state <> 'in_force' AND g.requested_by = p_key_urn)
                     OR (g.state = 'pending' AND g.counterpart_urn = p_key_urn))
             UNION ALL
             SELECT g.id, greatest(g.start_date, k.from_date),
                    dualreg_registration_clipped_json(g.id, k.from_date, k.to_date, p_key_urn)
               FROM registrations g, dualreg_key_periods(p.upn, p_key_urn) k
              WHERE p_key_urn IS NOT NULL AND g.upn = p.upn AND g.urn <> p_key_urn
                AND g.start_date <= k.to_date
                AND coalesce(g.end_date, 'infinity') >= k.from_date) x), '[]'::jsonb))
    FROM pupils p WHERE p.upn = p_upn AND dualreg_pupil_visible(p.upn, p_key_urn)
$$;

-- A name as compared when a school proves it knows a pupil: trimmed, without accents,
-- in lower case.
CREATE OR REPLACE FUNCTION dualreg_name_key(p_name text) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT lower(unaccent(btrim(p_name)))
$$;

-- Whether a school key may name the pupil in a new registration: the pupil is visible
-- to it, or the request carries the pupil's names and date of birth as stored. An
-- unknown UPN, missing details and wrong details all fail alike, so the answer tells a
-- school nothing about pupils it does not know.
CREATE OR REPLACE FUNCTION dualreg_pupil_known(p_upn text, p_key_urn text, p_given text,
                                               p_family text, p_dob date) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM pupils p WHERE p.upn = p_upn)
     AND (dualreg_pupil_visible(p_upn, p_key_urn)
          OR EXISTS (SELECT 1 FROM pupils p
                      WHERE p.upn = p_upn AND p.date_of_birth = p_dob
                        AND dualreg_name_key(p.given_name) = dualreg_name_key(p_given)
                        AND dualreg_name_key(p.family_name) = dualreg_name_key(p_family)))
$$;

-- The schools a registration concerns: its own and those of the pupil's registrations
-- in force overlapping it (for a subsidiary, the main school; for a main, any
-- subsidiary).
CREATE OR REPLACE FUNCTION dualreg_registration_urns(p_id bigint) RETURNS text[]
LANGUAGE sql STABLE AS $$
  SELECT array_agg(DISTINCT o.urn ORDER BY o.urn)
    FROM registrations r
    JOIN registrations o
      ON o.upn = r.upn
     AND daterange(o.start_date, o.end_date, '[]') && daterange(r.start_date, r.end_date, '[]')
   WHERE r.id = p_id
$$;

-- Whether a school may change a registration: its own, or (for a subsidiary) one whose
-- period overlaps a main registration at that school.
CREATE OR REPLACE FUNCTION dualreg_registration_writable(p_id bigint, p_key_urn text)
RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT p_key_urn IS NULL OR EXISTS (
    SELECT 1 FROM registrations r
     WHERE r.id = p_id
       AND (r.urn = p_key_urn
            OR (r.role = 'subsidiary' AND EXISTS (
                  SELECT 1 FROM registrations m
                   WHERE m.upn = r.upn AND m.role = 'main' AND m.urn = p_key_urn
                     AND daterange(m.start_date, m.end_date, '[]')
                         && daterange(r.start_date, r.end_date, '[]')))))
$$;

-- Refuses (409) a period that clashes with another registration of the pupil in force:
-- a second registration of the same role, or a second one at the same school. The
-- detail names the registration clashed with only when p_detailed (an admin key): a
-- school is not told about other schools' registrations.
DROP FUNCTION IF EXISTS dualreg_registration_check_overlap(text, text, text, date, date,
                                                           bigint, text);
CREATE OR REPLACE FUNCTION dualreg_registration_check_overlap(p_upn text, p_urn text,
                                                              p_role text, p_start date,
                                                              p_end date, p_except bigint,
                                                              p_pointer text,
                                                              p_detailed boolean)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    c registrations;
BEGIN
    SELECT * INTO c FROM registrations
     WHERE upn = p_upn AND (role = p_role OR urn = p_urn) AND id IS DISTINCT FROM p_except
       AND daterange(start_date, end_date, '[]') && daterange(p_start, p_end, '[]')
     ORDER BY start_date LIMIT 1;
    IF FOUND AND p_detailed THEN
        PERFORM dualreg_fail(409, 'overlapping-registration',
            format('the period overlaps registration %s (%s, from %s to %s)%s', c.id, c.role,
                   c.start_date, coalesce(c.end_date::text, 'open-ended'),
                   CASE WHEN c.role = p_role
                        THEN format(': a pupil has at most one %s registration at a time', p_role)
                        ELSE ': a pupil is on one school''s roll once at a time' END),
            p_pointer);
    ELSIF FOUND THEN
        PERFORM dualreg_fail(409, 'overlapping-registration',
            CASE WHEN c.urn = p_urn
                 THEN 'the pupil is already on this school''s roll in that period'
                 ELSE format('the pupil already has a %s registration in that period', p_role)
            END, p_pointer);
    END IF;
END $$;

-- Brings the derived D marks of the pupil in line for [p_from, today], bounded to the
-- last 400 days; nothing when p_from is after today.
CREATE OR REPLACE FUNCTION dualreg_registry_rederive(p_upn text, p_from date) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_today date := dualreg_today();
BEGIN
    IF p_from IS NOT NULL AND p_from <= v_today THEN
        PERFORM dualreg_derive_d(p_upn, greatest(p_from, v_today - 400), v_today);
    END IF;
END $$;

-- The subsidiary rule, checked when a subsidiary registration is asked for and again
-- when it comes into force: the main registration in force on p_start, which must be at
-- another school (422 no-main-registration, or p_status when confirming). Returns it.
CREATE OR REPLACE FUNCTION dualreg_subsidiary_main(p_upn text, p_urn text, p_start date,
                                                   p_status integer) RETURNS registrations
LANGUAGE plpgsql AS $$
DECLARE
    v_main registrations;
BEGIN
    SELECT * INTO v_main FROM registrations
     WHERE upn = p_upn AND role = 'main'
       AND p_start BETWEEN start_date AND coalesce(end_date, 'infinity');
    IF v_main.id IS NULL THEN
        PERFORM dualreg_fail(p_status, 'no-main-registration',
            format('a subsidiary registration needs a main registration at another school in force on its start date (%s)',
                   p_start), '/start_date');
    END IF;
    IF v_main.urn = p_urn THEN
        PERFORM dualreg_fail(p_status, 'no-main-registration',
            'the main registration on the start date is at this same school; a subsidiary must be at another school',
            '/urn');
    END IF;
    RETURN v_main;
END $$;

-- POST /v1/registrations. The subsidiary rule: a main registration at another school
-- must be in force on the subsidiary's start date (later changes to either side are
-- allowed; the day plan expects the pupil at the subsidiary on days without a main).
--
-- An admin key's registration is in force at once. A school key's:
--  * main, at its own school: in force at once, starting at most p_max_backdate days
--    before today (422 start-date-too-early);
--  * subsidiary, at its own school (a PRU admitting) or, as the pupil's main school on
--    the start date, at another school: a request (state pending) that the other school
--    (counterpart_urn) confirms or declines before now + p_ttl; until then it counts
--    for nothing. registration.requested goes to the counterpart only.
-- A school key naming a pupil it cannot see proves it knows the pupil with p_given,
-- p_family and p_dob (dualreg_pupil_known); otherwise, as for an unknown UPN, 422
-- unknown-pupil. Returns {status, body}.
CREATE OR REPLACE FUNCTION dualreg_registration_create(p_key_urn text, p_upn text, p_urn text,
                                                       p_role text, p_start date, p_end date,
                                                       p_mask integer, p_given text,
                                                       p_family text, p_dob date,
                                                       p_ttl interval, p_max_backdate integer)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_main registrations;
    v_counterpart text;
    v_id bigint;
    v_reg jsonb;
BEGIN
    IF p_key_urn IS NOT NULL AND p_role = 'main' AND p_urn <> p_key_urn THEN
        PERFORM dualreg_fail(403, 'forbidden',
            'a school key registers main registrations only at its own school', '/urn');
    END IF;
    IF p_key_urn IS NOT NULL AND p_role = 'main'
       AND p_start < dualreg_today() - coalesce(p_max_backdate, 0) THEN
        PERFORM dualreg_fail(422, 'start-date-too-early',
            format('a school key''s main registration starts at most %s days before today (on or after %s); ask an administrator for an earlier start',
                   coalesce(p_max_backdate, 0), dualreg_today() - coalesce(p_max_backdate, 0)),
            '/start_date');
    END IF;
    PERFORM dualreg_lock_pupil(p_upn);
    IF p_key_urn IS NOT NULL THEN
        IF NOT dualreg_pupil_known(p_upn, p_key_urn, p_given, p_family, p_dob) THEN
            PERFORM dualreg_fail(422, 'unknown-pupil',
                                 'no pupil with this UPN and these details', '/upn');
        END IF;
    ELSIF NOT EXISTS (SELECT 1 FROM pupils WHERE upn = p_upn) THEN
        PERFORM dualreg_fail(422, 'unknown-pupil',
            format('no pupil with UPN %s: create it with POST /v1/pupils first', p_upn), '/upn');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM schools WHERE urn = p_urn) THEN
        PERFORM dualreg_fail(422, 'unknown-school', format('no school with URN %s', p_urn),
                             '/urn');
    END IF;
    IF p_role = 'subsidiary' THEN
        SELECT * INTO v_main FROM registrations
         WHERE upn = p_upn AND role = 'main'
           AND p_start BETWEEN start_date AND coalesce(end_date, 'infinity');
        IF p_key_urn IS NOT NULL AND p_key_urn <> p_urn
           AND (v_main.id IS NULL OR v_main.urn <> p_key_urn) THEN
            PERFORM dualreg_fail(403, 'forbidden',
                'a school key registers a subsidiary only at its own school or for a pupil on its own roll as main school',
                '/urn');
        END IF;
        v_main := dualreg_subsidiary_main(p_upn, p_urn, p_start, 422);
        IF p_key_urn IS NOT NULL THEN
            v_counterpart := CASE WHEN p_key_urn = p_urn THEN v_main.urn ELSE p_urn END;
        END IF;
    END IF;
    PERFORM dualreg_registration_check_overlap(p_upn, p_urn, p_role, p_start, p_end, NULL,
                                               '/start_date', p_key_urn IS NULL);
    INSERT INTO registration_records (upn, urn, role, start_date, end_date, state,
                                      requested_by, counterpart_urn, expires_at,
                                      created_at, updated_at)
    VALUES (p_upn, p_urn, p_role, p_start, p_end,
            CASE WHEN v_counterpart IS NULL THEN 'in_force' ELSE 'pending' END,
            p_key_urn, v_counterpart,
            CASE WHEN v_counterpart IS NOT NULL THEN dualreg_now() + p_ttl END,
            dualreg_now(), dualreg_now())
    RETURNING id INTO v_id;
    IF p_role = 'subsidiary' THEN
        INSERT INTO registration_schedules (registration_id, effective_from, mask, created_at)
        VALUES (v_id, p_start, p_mask, dualreg_now());
    END IF;
    v_reg := dualreg_registration_json(v_id);
    IF v_counterpart IS NOT NULL THEN
        PERFORM dualreg_emit('registration.requested', p_upn, ARRAY[v_counterpart],
                             dualreg_registration_event_data(v_id)
                             || jsonb_build_object('requested_by', p_key_urn,
                                                   'expires_at', v_reg->'expires_at'));
        RETURN v_reg;
    END IF;
    PERFORM dualreg_emit('registration.created', p_upn, dualreg_registration_urns(v_id),
                         dualreg_registration_event_data(v_id));
    PERFORM dualreg_registry_rederive(p_upn, p_start);
    RETURN v_reg;
END $$;

-- The form dualregctl and earlier callers use: as an administrator (p_key_urn NULL)
-- the registration is in force at once.
CREATE OR REPLACE FUNCTION dualreg_registration_create(p_key_urn text, p_upn text, p_urn text,
                                                       p_role text, p_start date, p_end date,
                                                       p_mask integer) RETURNS jsonb
LANGUAGE sql AS $$
  SELECT dualreg_registration_create(p_key_urn, p_upn, p_urn, p_role, p_start, p_end, p_mask,
                                     NULL, NULL, NULL, interval '14 days', 30)
$$;

-- Applies a change to registration r (a new end date when p_end_set; a schedule
-- version p_mask from p_eff) after checking it against the registration and the
-- pupil's other registrations in force: at once (PATCH) or when the other school
-- confirms it. Emits registration.ended when an end date is set, else
-- registration.changed; nothing when nothing changed. Derived D marks follow from the
-- earliest date affected.
CREATE OR REPLACE FUNCTION dualreg_registration_apply(p_id bigint, p_end_set boolean,
                                                      p_end date, p_mask integer, p_eff date,
                                                      p_detailed boolean) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    r registrations;
    v_end date;
    v_from date;
    v_changed boolean := false;
BEGIN
    SELECT * INTO r FROM registrations WHERE id = p_id;
    v_end := CASE WHEN p_end_set THEN p_end ELSE r.end_date END;
    IF v_end IS DISTINCT FROM r.end_date THEN
        PERFORM dualreg_registration_check_overlap(r.upn, r.urn, r.role, r.start_date, v_end,
                                                   r.id, '/end_date', p_detailed);
        UPDATE registrations SET end_date = v_end, updated_at = dualreg_now() WHERE id = r.id;
        v_from := least(coalesce(r.end_date, 'infinity'), coalesce(v_end, 'infinity')) + 1;
        v_changed := true;
    END IF;
    IF p_mask IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM registration_schedules
             WHERE registration_id = r.id AND effective_from = p_eff AND mask = p_mask) THEN
        INSERT INTO registration_schedules (registration_id, effective_from, mask, created_at)
        VALUES (r.id, p_eff, p_mask, dualreg_now())
        ON CONFLICT (registration_id, effective_from)
        DO UPDATE SET mask = EXCLUDED.mask, created_at = EXCLUDED.created_at;
        UPDATE registrations SET updated_at = dualreg_now() WHERE id = r.id;
        v_from := least(v_from, p_eff);
        v_changed := true;
    END IF;
    IF v_changed THEN
        PERFORM dualreg_emit(
            CASE WHEN p_end_set AND v_end IS NOT NULL AND v_end IS DISTINCT FROM r.end_date
                 THEN 'registration.ended' ELSE 'registration.changed' END,
            r.upn, dualreg_registration_urns(r.id), dualreg_registration_event_data(r.id));
        PERFORM dualreg_registry_rederive(r.upn, greatest(v_from, r.start_date));
    END IF;
    RETURN dualreg_registration_json(r.id);
END $$;

-- Checks a change against registration r itself (422s).
CREATE OR REPLACE FUNCTION dualreg_registration_check_change(r registrations, p_end_set boolean,
                                                             p_end date, p_mask integer,
                                                             p_eff date) RETURNS date
LANGUAGE plpgsql AS $$
DECLARE
    v_end date := CASE WHEN p_end_set THEN p_end ELSE r.end_date END;
BEGIN
    IF p_mask IS NOT NULL AND r.role = 'main' THEN
        PERFORM dualreg_fail(422, 'schedule-not-allowed',
            'only a subsidiary registration has a schedule', '/schedule');
    END IF;
    IF v_end < r.start_date THEN
        PERFORM dualreg_fail(422, 'invalid-end-date',
            format('end_date must not be before start_date (%s)', r.start_date), '/end_date');
    END IF;
    IF p_mask IS NOT NULL AND (p_eff < r.start_date OR p_eff > coalesce(v_end, 'infinity')) THEN
        PERFORM dualreg_fail(422, 'effective-from-outside-registration',
            format('effective_from must lie within the registration (%s to %s)', r.start_date,
                   coalesce(v_end::text, 'open-ended')), '/effective_from');
    END IF;
    RETURN v_end;
END $$;

-- PATCH /v1/registrations/{id}: a new end date (NULL reopens) when p_end_set, and/or a
-- schedule version effective from p_eff (replacing a version with that same date).
-- An admin key's change, and a school key's change that narrows what the other school
-- is exposed to (an earlier end date), apply at once (200). A school key's change that
-- widens it (a later end date, reopening, or any schedule change of a subsidiary)
-- while another school has a registration in force overlapping the new period waits
-- for that school's consent (202, shown as pending_change; registration.requested to
-- that school; expires at now + p_ttl). Returns {status, body}.
CREATE OR REPLACE FUNCTION dualreg_registration_update(p_key_urn text, p_id bigint,
                                                       p_end_set boolean, p_end date,
                                                       p_mask integer, p_eff date,
                                                       p_ttl interval)
RETURNS TABLE (status integer, body jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    r registrations;
    v_upn text;
    v_end date;
    v_counterpart text;
    v_reg jsonb;
BEGIN
    SELECT g.upn INTO v_upn FROM registrations g WHERE g.id = p_id;
    IF NOT FOUND OR NOT dualreg_registration_visible(p_id, p_key_urn) THEN
        PERFORM dualreg_fail(404, 'not-found', format('no registration %s', p_id));
    END IF;
    PERFORM dualreg_lock_pupil(v_upn);
    SELECT * INTO r FROM registrations g WHERE g.id = p_id FOR NO KEY UPDATE;
    IF NOT dualreg_registration_writable(p_id, p_key_urn) THEN
        PERFORM dualreg_fail(403, 'forbidden',
            'a school key changes only registrations at its own school, or a subsidiary registration of a pupil on its roll as main school');
    END IF;
    v_end := dualreg_registration_check_change(r, p_end_set, p_end, p_mask, p_eff);
    IF p_key_urn IS NOT NULL
       AND ((p_end_set AND coalesce(v_end, 'infinity') > coalesce(r.end_date, 'infinity'))
            OR (p_mask IS NOT NULL AND r.role = 'subsidiary')) THEN
        v_counterpart := CASE WHEN r.urn <> p_key_urn THEN r.urn ELSE
            (SELECT o.urn FROM registrations o
              WHERE o.upn = r.upn AND o.urn <> r.urn
                AND daterange(o.start_date, o.end_date, '[]')
                    && daterange(r.start_date, v_end, '[]')
              ORDER BY o.role = 'main' DESC, o.start_date LIMIT 1) END;
    END IF;
    IF v_counterpart IS NULL THEN
        RETURN QUERY SELECT 200, dualreg_registration_apply(r.id, p_end_set, p_end, p_mask,
                                                           p_eff, p_key_urn IS NULL);
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM registration_changes c
                WHERE c.registration_id = r.id AND c.state = 'pending') THEN
        PERFORM dualreg_fail(409, 'change-pending',
            'a change to this registration already awaits a decision: withdraw it first');
    END IF;
    IF v_end IS DISTINCT FROM r.end_date THEN
        PERFORM dualreg_registration_check_overlap(r.upn, r.urn, r.role, r.start_date, v_end,
                                                   r.id, '/end_date', false);
    END IF;
    INSERT INTO registration_changes (registration_id, end_date_set, end_date, mask,
                                      effective_from, requested_by, counterpart_urn,
                                      expires_at, created_at)
    VALUES (r.id, p_end_set, p_end, p_mask, CASE WHEN p_mask IS NOT NULL THEN p_eff END,
            p_key_urn, v_counterpart, dualreg_now() + p_ttl, dualreg_now());
    v_reg := dualreg_registration_json(r.id);
    PERFORM dualreg_emit('registration.requested', r.upn, ARRAY[v_counterpart],
                         dualreg_registration_event_data(r.id)
                         || jsonb_build_object('requested_by', p_key_urn,
                                               'pending_change', v_reg->'pending_change'));
    RETURN QUERY SELECT 202, v_reg;
END $$;

-- The form dualregctl and earlier callers use (an administrator's change applies at
-- once; the result is the registration).
CREATE OR REPLACE FUNCTION dualreg_registration_patch(p_key_urn text, p_id bigint,
                                                      p_end_set boolean, p_end date,
                                                      p_mask integer, p_eff date)
RETURNS jsonb
LANGUAGE sql AS $$
  SELECT u.body FROM dualreg_registration_update(p_key_urn, p_id, p_end_set, p_end, p_mask,
                                                 p_eff, interval '14 days') u
$$;

-- POST /v1/pupils: 201 for a new pupil, 200 when the same UPN exists with the same
-- data, 409 when it exists with other data (the fields that differ are named to admin
-- keys only).
CREATE OR REPLACE FUNCTION dualreg_pupil_create(p_admin boolean, p_upn text, p_given text,
                                                p_family text, p_dob date)
RETURNS TABLE (status integer, body jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    p pupils;
    v_diff text := '';
BEGIN
    IF p_dob > dualreg_today() THEN
        PERFORM dualreg_fail(422, 'invalid-date-of-birth', 'date_of_birth is in the future',
                             '/date_of_birth');
    END IF;
    INSERT INTO pupils (upn, given_name, family_name, date_of_birth, created_at)
    VALUES (p_upn, p_given, p_family, p_dob, dualreg_now())
    ON CONFLICT (upn) DO NOTHING
    RETURNING * INTO p;
    IF FOUND THEN
        RETURN QUERY SELECT 201, dualreg_pupil_json(p);
        RETURN;
    END IF;
    SELECT * INTO p FROM pupils WHERE upn = p_upn;
    IF p.given_name = p_given AND p.family_name = p_family AND p.date_of_birth = p_dob THEN
        RETURN QUERY SELECT 200, dualreg_pupil_json(p);
        RETURN;
    END IF;
    IF p_admin THEN
        v_diff := concat_ws(E'\n',
            CASE WHEN p.given_name <> p_given THEN '/given_name' END,
            CASE WHEN p.family_name <> p_family THEN '/family_name' END,
            CASE WHEN p.date_of_birth <> p_dob THEN '/date_of_birth' END);
    END IF;
    PERFORM dualreg_fail(409, 'pupil-exists',
        format('a pupil with UPN %s already exists with different details', p_upn), v_diff);
END $$;

-- The closures of a school as the API shows them.
CREATE OR REPLACE FUNCTION dualreg_closures_json(p_urn text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('urn', p_urn, 'closures', coalesce(
           (SELECT jsonb_agg(jsonb_build_object('from', from_date, 'to', to_date,
                                                'reason', reason) ORDER BY from_date)
              FROM school_closures WHERE urn = p_urn), '[]'::jsonb))
$$;

-- PUT /v1/schools/{urn}/closures: replaces the list ([{from, to, reason}], already
-- validated by the daemon) and brings the derived D marks of every dual-registered
-- pupil of the school in line over the dates whose closure status changed, bounded
-- to [today - 400, today].
--
-- The work of one PUT is bounded: a closure it adds or changes (one not stored with
-- the same dates) lies within 400 days of today either way (422 closure-out-of-window);
-- and the closures it adds, changes or removes cover at most 400 days within that
-- window (422 too-many-closure-days). Stored closures sent back as they are stay,
-- whatever their dates.
CREATE OR REPLACE FUNCTION dualreg_closures_replace(p_urn text, p_closures jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_today date := dualreg_today();
    v_lo date;
    v_hi date;
    v_upn text;
    v_i bigint;
    v_f date;
    v_t date;
    v_days bigint;
BEGIN
    -- NO KEY UPDATE: concurrent writers referencing the school (FOR KEY SHARE) are
    -- not blocked, so they cannot deadlock with the pupil locks taken below.
    PERFORM 1 FROM schools WHERE urn = p_urn FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        PERFORM dualreg_fail(404, 'not-found', format('no school with URN %s', p_urn));
    END IF;
    SELECT e.i - 1, (e.v->>'from')::date, (e.v->>'to')::date INTO v_i, v_f, v_t
      FROM jsonb_array_elements(p_closures) WITH ORDINALITY e(v, i)
     WHERE ((e.v->>'from')::date < v_today - 400 OR (e.v->>'to')::date > v_today + 400)
       AND NOT EXISTS (SELECT 1 FROM school_closures c
                        WHERE c.urn = p_urn AND c.from_date = (e.v->>'from')::date
                          AND c.to_date = (e.v->>'to')::date)
     ORDER BY e.i LIMIT 1;
    IF FOUND THEN
        PERFORM dualreg_fail(422, 'closure-out-of-window',
            format('the closure %s to %s is new or changed and reaches outside %s to %s: '
                   'closures are added or changed at most 400 days before or after '
                   'today (stored ones may be sent back as they are)',
                   v_f, v_t, v_today - 400, v_today + 400),
            format('/closures/%s/%s', v_i,
                   CASE WHEN v_f < v_today - 400 THEN 'from' ELSE 'to' END));
    END IF;
    WITH new AS (
        SELECT (e->>'from')::date AS f, (e->>'to')::date AS t
          FROM jsonb_array_elements(p_closures) e
    ), old AS (
        SELECT from_date AS f, to_date AS t FROM school_closures WHERE urn = p_urn
    )
    SELECT coalesce(sum(least(x.t, v_today + 400) - greatest(x.f, v_today - 400) + 1), 0)
      INTO v_days
      FROM ((SELECT f, t FROM old EXCEPT SELECT f, t FROM new)
            UNION ALL (SELECT f, t FROM new EXCEPT SELECT f, t FROM old)) x
     WHERE x.t >= v_today - 400 AND x.f <= v_today + 400;
    IF v_days > 400 THEN
        PERFORM dualreg_fail(422, 'too-many-closure-days',
            format('the closures added, changed or removed cover %s days within 400 days '
                   'of today; one request may change at most 400: send the change in '
                   'parts', v_days),
            '/closures');
    END IF;
    WITH new AS (
        SELECT (e->>'from')::date AS f, (e->>'to')::date AS t
          FROM jsonb_array_elements(p_closures) e
    ), old AS (
        SELECT from_date AS f, to_date AS t FROM school_closures WHERE urn = p_urn
    )
    SELECT min(x.f), max(x.t) INTO v_lo, v_hi
      FROM ((SELECT f, t FROM old EXCEPT SELECT f, t FROM new)
            UNION ALL (SELECT f, t FROM new EXCEPT SELECT f, t FROM old)) x;
    DELETE FROM school_closures WHERE urn = p_urn;
    INSERT INTO school_closures (urn, from_date, to_date, reason)
    SELECT p_urn, (e->>'from')::date, (e->>'to')::date, coalesce(e->>'reason', '')
      FROM jsonb_array_elements(p_closures) e;
    UPDATE schools SET updated_at = dualreg_now() WHERE urn = p_urn;
    -- greatest/least ignore NULLs: no changed range means nothing to re-derive.
    IF v_lo IS NOT NULL THEN
        v_lo := greatest(v_lo, v_today - 400);
        v_hi := least(v_hi, v_today);
    END IF;
    IF v_lo IS NOT NULL AND v_lo <= v_hi THEN
        FOR v_upn IN
            SELECT DISTINCT r.upn FROM registrations r
             WHERE r.urn = p_urn
               AND daterange(r.start_date, r.end_date, '[]') && daterange(v_lo, v_hi, '[]')
               AND EXISTS (SELECT 1 FROM registrations s
                            WHERE s.upn = r.upn AND s.role = 'subsidiary'
                              AND daterange(s.start_date, s.end_date, '[]')
                                  && daterange(v_lo, v_hi, '[]'))
             ORDER BY 1
        LOOP
            PERFORM dualreg_derive_d(v_upn, v_lo, v_hi);
        END LOOP;
    END IF;
    RETURN dualreg_closures_json(p_urn);
END $$;

-- POST /v1/schools. A register close time not given keeps the schools table's DEFAULT,
-- the one place the default is written down: the row is inserted without it, then the
-- times given (if any) are set.
CREATE OR REPLACE FUNCTION dualreg_school_create(p_urn text, p_laestab text, p_name text,
                                                 p_kind text, p_am_close time,
                                                 p_pm_close time) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    s schools;
BEGIN
    INSERT INTO schools (urn, laestab, name, kind, created_at, updated_at)
    VALUES (p_urn, p_laestab, p_name, p_kind, dualreg_now(), dualreg_now())
    RETURNING * INTO s;
    IF p_am_close IS NOT NULL OR p_pm_close IS NOT NULL THEN
        UPDATE schools
           SET am_close = coalesce(p_am_close, am_close),
               pm_close = coalesce(p_pm_close, pm_close)
         WHERE urn = p_urn
        RETURNING * INTO s;
    END IF;
    RETURN dualreg_school_json(s);
END $$;
