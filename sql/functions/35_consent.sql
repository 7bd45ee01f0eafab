-- Registrations by consent: the decisions on requests and their expiry. A request is a
-- pending registration (registration_records.state = 'pending') or a pending change
-- of a registration in force (registration_changes); 30_registry.sql makes them
-- (dualreg_registration_create, dualreg_registration_update) and schema step
-- 016_consent.sql describes the states. The school asked (counterpart_urn) or an admin
-- confirms or declines; the school that asked (requested_by) or an admin withdraws;
-- dualreg_expire_requests ends what nobody decided in time. Each decision is told to
-- the other school with a registration.* event; a registration confirmed comes into
-- force with registration.created, as if made then, and a change confirmed applies
-- with registration.changed or registration.ended.

-- Whether a key may see registration r's requests at all: an admin; the school that
-- asked or the school asked (of the registration or of its pending change); or a
-- school that may see the registration (dualreg_registration_visible). Everyone else
-- gets 404.
CREATE OR REPLACE FUNCTION dualreg_request_visible(r registration_records, p_key_urn text)
RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT p_key_urn IS NULL
      OR p_key_urn IN (r.requested_by, r.counterpart_urn)
      OR EXISTS (SELECT 1 FROM registration_changes c
                  WHERE c.registration_id = r.id AND c.state = 'pending'
                    AND p_key_urn IN (c.requested_by, c.counterpart_urn))
      OR dualreg_registration_visible(r.id, p_key_urn)
$$;

-- 403 unless the key is an admin's or the school whose decision is awaited.
CREATE OR REPLACE FUNCTION dualreg_request_decider(p_requested_by text, p_counterpart text,
                                                   p_key_urn text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_key_urn IS NOT NULL AND p_key_urn IS DISTINCT FROM p_counterpart THEN
        PERFORM dualreg_fail(403, 'forbidden',
            CASE WHEN p_key_urn = p_requested_by
                 THEN 'the school that asked cannot decide on its own request'
                 ELSE 'only the school asked decides on this request' END);
    END IF;
END $$;

-- Locks the pending request of registration p_id and returns the registration (r) and,
-- when what awaits a decision is a change of it rather than the registration itself,
-- that change (c; a row of NULLs otherwise). 404 when the key may not see the
-- registration; 409 nothing-pending when nothing awaits a decision (a request past its
-- expiry counts as expired even before dualreg_expire_requests records it).
DROP FUNCTION IF EXISTS dualreg_request_lock(text, bigint);
CREATE OR REPLACE FUNCTION dualreg_request_lock(p_key_urn text, p_id bigint,
                                                OUT r registration_records,
                                                OUT c registration_changes)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT * INTO r FROM registration_records g WHERE g.id = p_id;
    IF NOT FOUND OR NOT dualreg_request_visible(r, p_key_urn) THEN
        PERFORM dualreg_fail(404, 'not-found', format('no registration %s', p_id));
    END IF;
    PERFORM dualreg_lock_pupil(r.upn);
    SELECT * INTO r FROM registration_records g WHERE g.id = p_id FOR UPDATE;
    IF r.state = 'pending' AND r.expires_at > dualreg_now() THEN
        RETURN;
    END IF;
    SELECT * INTO c FROM registration_changes x
     WHERE x.registration_id = p_id AND x.state = 'pending' AND r.state = 'in_force'
       AND x.expires_at > dualreg_now()
       FOR UPDATE;
    IF c.id IS NULL THEN
        PERFORM dualreg_fail(409, 'nothing-pending',
            format('registration %s has no request awaiting a decision', p_id));
    END IF;
END $$;

-- What a pending change would do, for the events about it.
CREATE OR REPLACE FUNCTION dualreg_change_data(c registration_changes) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
           'change', jsonb_build_object(
               'end_date', CASE WHEN c.end_date_set THEN c.end_date
                                ELSE (SELECT r.end_date FROM registration_records r
                                       WHERE r.id = c.registration_id) END,
               'schedule', CASE WHEN c.mask IS NOT NULL THEN dualreg_schedule_json(c.mask) END,
               'effective_from', c.effective_from),
           'requested_by', c.requested_by)
$$;

-- POST /v1/registrations/{id}/confirm: the school asked (or an admin) agrees. The rules
-- are checked again as they stand now (409 when the pupil's registrations changed
-- since: another registration in the period, or no longer the same main school).
CREATE OR REPLACE FUNCTION dualreg_registration_confirm(p_key_urn text, p_id bigint)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    l record; -- dualreg_request_lock's (r, c)
    r registration_records;
    c registration_changes;
    v_main registrations;
    v_reg registrations;
BEGIN
    SELECT * INTO l FROM dualreg_request_lock(p_key_urn, p_id);
    r := l.r;
    c := l.c;
    IF c.id IS NULL THEN
        PERFORM dualreg_request_decider(r.requested_by, r.counterpart_urn, p_key_urn);
        IF r.role = 'subsidiary' THEN
            v_main := dualreg_subsidiary_main(r.upn, r.urn, r.start_date, 409);
            IF v_main.urn IS DISTINCT FROM r.requested_by
               AND v_main.urn IS DISTINCT FROM r.counterpart_urn THEN
                PERFORM dualreg_fail(409, 'request-outdated',
                    'the pupil''s main school on the start date is no longer the one this request was made with: the request must be made again');
            END IF;
        END IF;
        PERFORM dualreg_registration_check_overlap(r.upn, r.urn, r.role,
                                                   r.start_date, r.end_date, p_id,
                                                   '/start_date', p_key_urn IS NULL);
        UPDATE registration_records
           SET state = 'in_force', decided_at = dualreg_now(), updated_at = dualreg_now()
         WHERE id = p_id;
        PERFORM dualreg_emit('registration.created', r.upn, dualreg_registration_urns(p_id),
                             dualreg_registration_event_data(p_id));
        PERFORM dualreg_registry_rederive(r.upn, r.start_date);
        RETURN dualreg_registration_json(p_id);
    END IF;
    PERFORM dualreg_request_decider(c.requested_by, c.counterpart_urn, p_key_urn);
    SELECT * INTO v_reg FROM registrations WHERE id = p_id;
    PERFORM dualreg_registration_check_change(v_reg, c.end_date_set, c.end_date,
                                              c.mask, c.effective_from);
    UPDATE registration_changes SET state = 'applied', decided_at = dualreg_now()
     WHERE id = c.id;
    RETURN dualreg_registration_apply(p_id, c.end_date_set, c.end_date, c.mask,
                                      c.effective_from, p_key_urn IS NULL);
END $$;

-- POST /v1/registrations/{id}/decline: the school asked (or an admin) refuses, with an
-- optional reason; registration.declined goes to the school that asked.
CREATE OR REPLACE FUNCTION dualreg_registration_decline(p_key_urn text, p_id bigint,
                                                        p_reason text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    l record; -- dualreg_request_lock's (r, c)
    r registration_records;
    c registration_changes;
BEGIN
    SELECT * INTO l FROM dualreg_request_lock(p_key_urn, p_id);
    r := l.r;
    c := l.c;
    IF c.id IS NULL THEN
        PERFORM dualreg_request_decider(r.requested_by, r.counterpart_urn, p_key_urn);
        UPDATE registration_records
           SET state = 'declined', decided_at = dualreg_now(), decision_reason = p_reason,
               updated_at = dualreg_now()
         WHERE id = p_id;
        PERFORM dualreg_emit('registration.declined', r.upn, ARRAY[r.requested_by],
                             dualreg_registration_event_data(p_id)
                             || jsonb_build_object('reason', p_reason));
    ELSE
        PERFORM dualreg_request_decider(c.requested_by, c.counterpart_urn, p_key_urn);
        UPDATE registration_changes
           SET state = 'declined', decided_at = dualreg_now(), decision_reason = p_reason
         WHERE id = c.id;
        PERFORM dualreg_emit('registration.declined', r.upn, ARRAY[c.requested_by],
                             dualreg_registration_event_data(p_id) || dualreg_change_data(c)
                             || jsonb_build_object('reason', p_reason));
    END IF;
    RETURN dualreg_registration_json(p_id);
END $$;

-- POST /v1/registrations/{id}/withdraw: the school that asked (or an admin) takes its
-- request back; registration.withdrawn goes to the school asked.
CREATE OR REPLACE FUNCTION dualreg_registration_withdraw(p_key_urn text, p_id bigint)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    l record; -- dualreg_request_lock's (r, c)
    r registration_records;
    c registration_changes;
    v_by text;
    v_to text;
BEGIN
    SELECT * INTO l FROM dualreg_request_lock(p_key_urn, p_id);
    r := l.r;
    c := l.c;
    v_by := CASE WHEN c.id IS NULL THEN r.requested_by ELSE c.requested_by END;
    v_to := CASE WHEN c.id IS NULL THEN r.counterpart_urn ELSE c.counterpart_urn END;
    IF p_key_urn IS NOT NULL AND p_key_urn IS DISTINCT FROM v_by THEN
        PERFORM dualreg_fail(403, 'forbidden', 'only the school that asked withdraws a request');
    END IF;
    IF c.id IS NULL THEN
        UPDATE registration_records
           SET state = 'withdrawn', decided_at = dualreg_now(), updated_at = dualreg_now()
         WHERE id = p_id;
        PERFORM dualreg_emit('registration.withdrawn', r.upn, ARRAY[v_to],
                             dualreg_registration_event_data(p_id));
    ELSE
        UPDATE registration_changes SET state = 'withdrawn', decided_at = dualreg_now()
         WHERE id = c.id;
        PERFORM dualreg_emit('registration.withdrawn', r.upn, ARRAY[v_to],
                             dualreg_registration_event_data(p_id) || dualreg_change_data(c));
    END IF;
    RETURN dualreg_registration_json(p_id);
END $$;

-- Requests nobody decided on before their expiry become expired, and both schools are
-- told (registration.expired). Run by every daemon on its alerts timer: rows another
-- daemon is handling are skipped, so each expiry is recorded once. At most 500 of each
-- kind a run; returns how many expired.
CREATE OR REPLACE FUNCTION dualreg_expire_requests() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    r registration_records;
    c registration_changes;
    v_n integer := 0;
BEGIN
    FOR r IN SELECT * FROM registration_records
              WHERE state = 'pending' AND expires_at <= dualreg_now()
              ORDER BY expires_at, id LIMIT 500
                FOR UPDATE SKIP LOCKED LOOP
        UPDATE registration_records
           SET state = 'expired', decided_at = dualreg_now(), updated_at = dualreg_now()
         WHERE id = r.id;
        PERFORM dualreg_emit('registration.expired', r.upn,
                             ARRAY(SELECT DISTINCT u FROM unnest(ARRAY[r.requested_by,
                                                                       r.counterpart_urn]) u
                                    WHERE u IS NOT NULL ORDER BY u),
                             dualreg_registration_event_data(r.id));
        v_n := v_n + 1;
    END LOOP;
    FOR c IN SELECT * FROM registration_changes
              WHERE state = 'pending' AND expires_at <= dualreg_now()
              ORDER BY expires_at, id LIMIT 500
                FOR UPDATE SKIP LOCKED LOOP
        UPDATE registration_changes SET state = 'expired', decided_at = dualreg_now()
         WHERE id = c.id;
        PERFORM dualreg_emit('registration.expired',
                             (SELECT g.upn FROM registration_records g
                               WHERE g.id = c.registration_id),
                             ARRAY(SELECT DISTINCT u FROM unnest(ARRAY[c.requested_by,
                                                                       c.counterpart_urn]) u
                                    ORDER BY u),
                             dualreg_registration_event_data(c.registration_id)
                             || dualreg_change_data(c));
        v_n := v_n + 1;
    END LOOP;
    RETURN v_n;
END $$;

-- GET /v1/registrations?status=pending: the requests awaiting the key's decision or
-- made by it (an admin key: all), oldest first, at most p_limit (1 to 500) after
-- registration id p_after. Each item is the registration (its pending_change for a
-- change); the school asked also gets the pupil's identity, to decide.
CREATE OR REPLACE FUNCTION dualreg_registration_requests(p_key_urn text, p_after bigint,
                                                         p_limit integer) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  WITH pend AS (
    SELECT r.id, r.upn,
           CASE WHEN r.state = 'pending' THEN r.counterpart_urn ELSE c.counterpart_urn END
             AS awaiting
      FROM registration_records r
      LEFT JOIN registration_changes c
        ON c.registration_id = r.id AND c.state = 'pending' AND r.state = 'in_force'
       AND c.expires_at > dualreg_now()
     WHERE r.id > coalesce(p_after, 0)
       AND ((r.state = 'pending' AND r.expires_at > dualreg_now()
             AND (p_key_urn IS NULL OR p_key_urn IN (r.requested_by, r.counterpart_urn)))
            OR (c.id IS NOT NULL
                AND (p_key_urn IS NULL OR p_key_urn IN (c.requested_by, c.counterpart_urn))))
     ORDER BY r.id
     LIMIT p_limit + 1
  ), page AS (
    SELECT * FROM pend ORDER BY id LIMIT p_limit
  )
  SELECT jsonb_build_object(
           'registrations', coalesce((
             SELECT jsonb_agg(dualreg_registration_json(pg.id)
                              || CASE WHEN p_key_urn IS NULL OR pg.awaiting = p_key_urn
                                      THEN jsonb_build_object('pupil', (
                                             SELECT jsonb_build_object(
                                                      'upn', p.upn,
                                                      'given_name', p.given_name,
                                                      'family_name', p.family_name,
                                                      'date_of_birth', p.date_of_birth)
                                               FROM pupils p WHERE p.upn = pg.upn))
                                      ELSE '{}'::jsonb END
                              ORDER BY pg.id)
               FROM page pg), '[]'::jsonb),
           'next_cursor', CASE WHEN (SELECT count(*) FROM pend) > p_limit
                               THEN (SELECT max(id) FROM page)::text END)
$$;
