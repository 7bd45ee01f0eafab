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
           'created_at', s.created_at, 'updated_at', s.updated_at)
$$;

CREATE OR REPLACE FUNCTION dualreg_pupil_json(p pupils) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('upn', p.upn, 'given_name', p.given_name,
                            'family_name', p.family_name, 'date_of_birth', p.date_of_birth,
                            'created_at', p.created_at)
$$;

-- A registration with its schedule in force (today, or on its start date if that is
-- later; null for a main registration) and every schedule version.
CREATE OR REPLACE FUNCTION dualreg_registration_json(p_id bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
           'id', r.id, 'upn', r.upn, 'urn', r.urn, 'role', r.role,
           'start_date', r.start_date, 'end_date', r.end_date,
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
    FROM registrations r WHERE r.id = p_id
$$;

-- Whether a key may read a pupil: admin, or the pupil is or was on its school's roll.
CREATE OR REPLACE FUNCTION dualreg_pupil_visible(p_upn text, p_key_urn text) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT p_key_urn IS NULL
      OR EXISTS (SELECT 1 FROM registrations WHERE upn = p_upn AND urn = p_key_urn)
$$;

-- The schools a registration concerns: its own and those of the pupil's registrations
-- overlapping it (for a subsidiary, the main school; for a main, any subsidiary).
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

-- Refuses (409) a period that clashes with another registration of the pupil: a second
-- registration of the same role, or a second one at the same school.
CREATE OR REPLACE FUNCTION dualreg_registration_check_overlap(p_upn text, p_urn text,
                                                              p_role text, p_start date,
                                                              p_end date, p_except bigint,
                                                              p_pointer text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    c registrations;
BEGIN
    SELECT * INTO c FROM registrations
     WHERE upn = p_upn AND (role = p_role OR urn = p_urn) AND id IS DISTINCT FROM p_except
       AND daterange(start_date, end_date, '[]') && daterange(p_start, p_end, '[]')
     ORDER BY start_date LIMIT 1;
    IF FOUND THEN
        PERFORM dualreg_fail(409, 'overlapping-registration',
            format('the period overlaps registration %s (%s, from %s to %s)%s', c.id, c.role,
                   c.start_date, coalesce(c.end_date::text, 'open-ended'),
                   CASE WHEN c.role = p_role
                        THEN format(': a pupil has at most one %s registration at a time', p_role)
                        ELSE ': a pupil is on one school''s roll once at a time' END),
            p_pointer);
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

-- POST /v1/registrations. The subsidiary rule: a main registration at another school
-- must be in force on the subsidiary's start date (later changes to either side are
-- allowed; the day plan expects the pupil at the subsidiary on days without a main).
CREATE OR REPLACE FUNCTION dualreg_registration_create(p_key_urn text, p_upn text, p_urn text,
                                                       p_role text, p_start date, p_end date,
                                                       p_mask integer) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_main registrations;
    v_id bigint;
    v_reg jsonb;
BEGIN
    IF p_key_urn IS NOT NULL AND p_role = 'main' AND p_urn <> p_key_urn THEN
        PERFORM dualreg_fail(403, 'forbidden',
            'a school key registers main registrations only at its own school', '/urn');
    END IF;
    PERFORM dualreg_lock_pupil(p_upn);
    IF NOT EXISTS (SELECT 1 FROM pupils WHERE upn = p_upn) THEN
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
        IF v_main.id IS NULL THEN
            PERFORM dualreg_fail(422, 'no-main-registration',
                format('a subsidiary registration needs a main registration at another school in force on its start date (%s)',
                       p_start), '/start_date');
        END IF;
        IF v_main.urn = p_urn THEN
            PERFORM dualreg_fail(422, 'no-main-registration',
                'the main registration on the start date is at this same school; a subsidiary must be at another school',
                '/urn');
        END IF;
    END IF;
    PERFORM dualreg_registration_check_overlap(p_upn, p_urn, p_role, p_start, p_end, NULL,
                                               '/start_date');
    INSERT INTO registrations (upn, urn, role, start_date, end_date, created_at, updated_at)
    VALUES (p_upn, p_urn, p_role, p_start, p_end, dualreg_now(), dualreg_now())
    RETURNING id INTO v_id;
    IF p_role = 'subsidiary' THEN
        INSERT INTO registration_schedules (registration_id, effective_from, mask, created_at)
        VALUES (v_id, p_start, p_mask, dualreg_now());
    END IF;
    v_reg := dualreg_registration_json(v_id);
    PERFORM dualreg_emit('registration.created', p_upn, dualreg_registration_urns(v_id),
                         v_reg - 'schedules' - 'created_at' - 'updated_at');
    PERFORM dualreg_registry_rederive(p_upn, p_start);
    RETURN v_reg;
END $$;

-- PATCH /v1/registrations/{id}: a new end date (NULL reopens) when p_end_set, and/or a
-- schedule version effective from p_eff (replacing a version with that same date).
-- Emits registration.ended when an end date is set, else registration.changed; nothing
-- when nothing changed. Derived D marks follow from the earliest date affected.
CREATE OR REPLACE FUNCTION dualreg_registration_patch(p_key_urn text, p_id bigint,
                                                      p_end_set boolean, p_end date,
                                                      p_mask integer, p_eff date)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    r registrations;
    v_upn text;
    v_end date;
    v_from date;
    v_changed boolean := false;
    v_reg jsonb;
BEGIN
    SELECT upn INTO v_upn FROM registrations WHERE id = p_id;
    IF NOT FOUND OR NOT dualreg_pupil_visible(v_upn, p_key_urn) THEN
        PERFORM dualreg_fail(404, 'not-found', format('no registration %s', p_id));
    END IF;
    PERFORM dualreg_lock_pupil(v_upn);
    SELECT * INTO r FROM registrations WHERE id = p_id FOR NO KEY UPDATE;
    IF NOT dualreg_registration_writable(p_id, p_key_urn) THEN
        PERFORM dualreg_fail(403, 'forbidden',
            'a school key changes only registrations at its own school, or a subsidiary registration of a pupil on its roll as main school');
    END IF;
    IF p_mask IS NOT NULL AND r.role = 'main' THEN
        PERFORM dualreg_fail(422, 'schedule-not-allowed',
            'only a subsidiary registration has a schedule', '/schedule');
    END IF;
    v_end := CASE WHEN p_end_set THEN p_end ELSE r.end_date END;
    IF v_end < r.start_date THEN
        PERFORM dualreg_fail(422, 'invalid-end-date',
            format('end_date must not be before start_date (%s)', r.start_date), '/end_date');
    END IF;
    IF p_mask IS NOT NULL AND (p_eff < r.start_date OR p_eff > coalesce(v_end, 'infinity')) THEN
        PERFORM dualreg_fail(422, 'effective-from-outside-registration',
            format('effective_from must lie within the registration (%s to %s)', r.start_date,
                   coalesce(v_end::text, 'open-ended')), '/effective_from');
    END IF;
    IF v_end IS DISTINCT FROM r.end_date THEN
        PERFORM dualreg_registration_check_overlap(r.upn, r.urn, r.role, r.start_date, v_end,
                                                   r.id, '/end_date');
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
    v_reg := dualreg_registration_json(r.id);
    IF v_changed THEN
        PERFORM dualreg_emit(
            CASE WHEN p_end_set AND v_end IS NOT NULL AND v_end IS DISTINCT FROM r.end_date
                 THEN 'registration.ended' ELSE 'registration.changed' END,
            r.upn, dualreg_registration_urns(r.id),
            v_reg - 'schedules' - 'created_at' - 'updated_at');
        PERFORM dualreg_registry_rederive(r.upn, greatest(v_from, r.start_date));
    END IF;
    RETURN v_reg;
END $$;

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
CREATE OR REPLACE FUNCTION dualreg_closures_replace(p_urn text, p_closures jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_today date := dualreg_today();
    v_lo date;
    v_hi date;
    v_upn text;
BEGIN
    -- NO KEY UPDATE: concurrent writers referencing the school (FOR KEY SHARE) are
    -- not blocked, so they cannot deadlock with the pupil locks taken below.
    PERFORM 1 FROM schools WHERE urn = p_urn FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        PERFORM dualreg_fail(404, 'not-found', format('no school with URN %s', p_urn));
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
