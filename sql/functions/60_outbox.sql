-- Push to schools' MIS: the durable outbox (tables in schema/007_outbox.sql). A delivery
-- row is written in the same transaction as the event that causes it (a trigger on
-- events fans out), so nothing committed can be lost; the dispatcher claims due rows
-- with leases (FOR UPDATE SKIP LOCKED), so several daemons never send the same delivery
-- at once, and a daemon that dies hands its leases over when they expire.

-- Every event fans out to the subscriptions of the schools it concerns, in the
-- transaction that records it, however it was inserted (dualreg_emit or a set-based
-- insert of many events): a statement-level trigger over the new rows.
CREATE OR REPLACE FUNCTION dualreg_fan_out() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO deliveries (subscription_id, event_id, upn)
    SELECT s.id, e.id, e.upn
      FROM new_events e
      JOIN subscriptions s
        ON s.urn = ANY (e.urns) AND s.deleted_at IS NULL AND s.disabled_at IS NULL
       AND ('*' = ANY (s.events) OR e.type = ANY (s.events));
    -- Whoever inserts events notifies dualreg_events; the dispatcher listens there.
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER events_fan_out
    AFTER INSERT ON events REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION dualreg_fan_out();

-- Claims up to p_limit due deliveries for p_owner for p_lease_s seconds. Only the
-- oldest pending delivery of each (subscription, pupil) can go, so one pupil's events
-- arrive in order while other pupils are not held up; it goes when its time has come,
-- nobody holds a live lease on it and its subscription is active; at most p_per_sub
-- deliveries of one subscription are in flight at once. Set-based: the work per claim
-- grows with the pending deliveries, not with their square.
-- The lease and status are checked again on the locked rows themselves, so a delivery
-- another daemon claimed a moment ago is never claimed twice.
-- The secrets come as stored (sealed with the daemon's key, see secret_box.h), with
-- the subscription's id that the daemon opens them for.
DROP FUNCTION IF EXISTS dualreg_outbox_claim(text, integer, integer, integer);
CREATE OR REPLACE FUNCTION dualreg_outbox_claim(p_owner text, p_limit integer,
                                                p_per_sub integer, p_lease_s integer)
RETURNS TABLE (id bigint, event_id bigint, attempts integer, url text, secret text,
               previous_secret text, type text, occurred_at timestamptz, data jsonb,
               subscription_id bigint)
LANGUAGE sql AS $$
  WITH in_flight AS (
    SELECT l.subscription_id, count(*) AS n
      FROM deliveries l
     WHERE l.status = 'pending' AND l.lease_until >= now()
     GROUP BY l.subscription_id
  ), heads AS (
    SELECT DISTINCT ON (d.subscription_id, d.upn)
           d.id, d.subscription_id, d.next_attempt_at, d.lease_until
      FROM deliveries d
     WHERE d.status = 'pending'
     ORDER BY d.subscription_id, d.upn, d.event_id
  ), ranked AS (
    SELECT h.id, h.subscription_id, h.next_attempt_at,
           row_number() OVER (PARTITION BY h.subscription_id
                              ORDER BY h.next_attempt_at, h.id) AS rn
      FROM heads h
      JOIN subscriptions s ON s.id = h.subscription_id
     WHERE h.next_attempt_at <= now()
       AND (h.lease_until IS NULL OR h.lease_until < now())
       AND s.deleted_at IS NULL AND s.disabled_at IS NULL
  ), candidates AS (
    SELECT d.id
      FROM deliveries d
      JOIN ranked r ON r.id = d.id
      LEFT JOIN in_flight f ON f.subscription_id = r.subscription_id
     WHERE r.rn <= p_per_sub - coalesce(f.n, 0)
       AND d.status = 'pending'
       AND (d.lease_until IS NULL OR d.lease_until < now())
     ORDER BY r.next_attempt_at, r.id
     LIMIT p_limit
     FOR UPDATE OF d SKIP LOCKED
  ), claimed AS (
    UPDATE deliveries d
       SET lease_until = now() + make_interval(secs => p_lease_s), lease_owner = p_owner,
           attempts = d.attempts + 1, last_attempt_at = now()
      FROM candidates c
     WHERE d.id = c.id
    RETURNING d.id, d.event_id, d.attempts, d.subscription_id
  )
  SELECT c.id, c.event_id, c.attempts, s.url, s.secret,
         CASE WHEN s.previous_until > now() THEN s.previous_secret END,
         e.type, e.occurred_at, e.data, c.subscription_id
    FROM claimed c
    JOIN subscriptions s ON s.id = c.subscription_id
    JOIN events e ON e.id = c.event_id
$$;

-- Records the outcome of one attempt (only by the lease holder). p_outcome:
-- 'delivered' (2xx), 'gone' (410: the subscription is disabled), or 'retry' with the
-- delay before the next attempt (NULL: the schedule is exhausted, the delivery fails).
CREATE OR REPLACE FUNCTION dualreg_outbox_done(p_id bigint, p_owner text, p_outcome text,
                                               p_status integer, p_error text, p_response text,
                                               p_delay_s double precision)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_sub bigint;
    v_state text;
BEGIN
    IF p_outcome = 'delivered' THEN
        v_state := 'delivered';
    ELSIF p_outcome = 'gone' OR p_delay_s IS NULL THEN
        v_state := 'failed';
    ELSE
        v_state := 'pending';
    END IF;
    UPDATE deliveries
       SET status = v_state,
           last_status = p_status, last_error = p_error, last_response = p_response,
           delivered_at = CASE WHEN v_state = 'delivered' THEN now() END,
           next_attempt_at = CASE WHEN v_state = 'pending'
                                  THEN now() + make_interval(secs => p_delay_s)
                                  ELSE next_attempt_at END,
           lease_until = NULL, lease_owner = NULL
     WHERE id = p_id AND lease_owner = p_owner
    RETURNING subscription_id INTO v_sub;
    IF NOT FOUND THEN
        RETURN 'lease-lost';
    END IF;
    IF p_outcome = 'gone' THEN
        UPDATE subscriptions
           SET disabled_at = coalesce(disabled_at, now()),
               disabled_reason = 'the endpoint answered 410 Gone'
         WHERE id = v_sub;
    END IF;
    RETURN v_state;
END $$;

-- Records many outcomes in one transaction (one commit for a burst of deliveries):
-- p_outcomes is a JSON array of {id, outcome, status, error, response, delay}.
CREATE OR REPLACE FUNCTION dualreg_outbox_done_many(p_owner text, p_outcomes jsonb)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    o jsonb;
    n integer := 0;
BEGIN
    FOR o IN SELECT value FROM jsonb_array_elements(p_outcomes) LOOP
        PERFORM dualreg_outbox_done((o ->> 'id')::bigint, p_owner, o ->> 'outcome',
                                    (o ->> 'status')::integer, o ->> 'error',
                                    left(o ->> 'response', 2048),
                                    (o ->> 'delay')::double precision);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
