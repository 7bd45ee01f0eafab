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
-- deliveries of one subscription are in flight at once. Oldest first.
-- The work per claim does not grow with the backlog (indexes in
-- schema/025_outbox_speed.sql): the subscriptions with pending deliveries are found by
-- skipping through deliveries_pending_due; each one's leases are counted in
-- deliveries_leased; its due deliveries are read oldest first and the read stops once
-- it has as many as the subscription has room for, each checked to be its pupil's
-- oldest pending delivery by one probe of deliveries_order. (Only the deliveries of a
-- pupil whose oldest is in flight or waiting for a retry are read and passed over.)
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
LANGUAGE plpgsql
-- Each read names the order of the one index that serves it, and sorting is ruled out,
-- so every step is that index's probe or short range scan whatever the statistics say.
-- (Statistics gathered while nothing was pending, the usual case, make every index on
-- pending deliveries look empty and so equally cheap: a plan free to choose reads all
-- pending deliveries for each row it checks.) Costs that high would make PostgreSQL
-- compile the plan: no JIT here. The plan does not depend on the arguments, and is
-- made once per connection (planning it costs several times running it).
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off
SET enable_incremental_sort = off SET enable_hashjoin = off SET enable_mergejoin = off
SET jit = off SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  WITH RECURSIVE busy(sid) AS (
    (SELECT b.subscription_id FROM deliveries b
      WHERE b.status = 'pending'
      ORDER BY b.subscription_id, b.next_attempt_at, b.id LIMIT 1)
    UNION ALL
    SELECT (SELECT b.subscription_id FROM deliveries b
             WHERE b.status = 'pending' AND b.subscription_id > busy.sid
             ORDER BY b.subscription_id, b.next_attempt_at, b.id LIMIT 1)
      FROM busy WHERE busy.sid IS NOT NULL
  ), room AS (
    SELECT s.id AS sid,
           p_per_sub - (SELECT count(*) FROM (
                          SELECT 1 FROM deliveries l
                           WHERE l.subscription_id = s.id AND l.status = 'pending'
                             AND l.lease_until IS NOT NULL AND l.lease_until >= now()
                           ORDER BY l.subscription_id, l.lease_until
                           LIMIT p_per_sub) leased) AS n
      FROM busy JOIN subscriptions s ON s.id = busy.sid
     WHERE s.deleted_at IS NULL AND s.disabled_at IS NULL
  ), picked AS MATERIALIZED (
    SELECT c.id
      FROM room r
      CROSS JOIN LATERAL (
        SELECT h.id, h.next_attempt_at
          FROM deliveries h
         WHERE h.subscription_id = r.sid AND h.status = 'pending'
           AND h.next_attempt_at <= now()
           AND (h.lease_until IS NULL OR h.lease_until < now())
           AND h.event_id = CASE
                 WHEN h.upn IS NOT NULL THEN
                   (SELECT o.event_id FROM deliveries o
                     WHERE o.subscription_id = h.subscription_id
                       AND o.status = 'pending' AND o.upn = h.upn
                     ORDER BY o.subscription_id, o.upn, o.event_id LIMIT 1)
                 ELSE
                   (SELECT o.event_id FROM deliveries o
                     WHERE o.subscription_id = h.subscription_id
                       AND o.status = 'pending' AND o.upn IS NULL
                     ORDER BY o.subscription_id, o.upn, o.event_id LIMIT 1) END
         ORDER BY h.subscription_id, h.next_attempt_at, h.id
         LIMIT greatest(r.n, 0)) c
     WHERE r.n > 0
     ORDER BY c.next_attempt_at, c.id
     LIMIT p_limit
  ), candidates AS (
    SELECT d.id
      FROM deliveries d
     WHERE d.id = ANY (ARRAY(SELECT picked.id FROM picked))
       AND d.status = 'pending'
       AND (d.lease_until IS NULL OR d.lease_until < now())
     ORDER BY d.id
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
    JOIN events e ON e.id = c.event_id;
END $$;

-- Records the outcomes of attempts, only those whose lease p_owner holds, in one
-- statement: p_outcomes is a JSON array of {id, outcome, status, error, response,
-- delay}. outcome: 'delivered' (2xx), 'gone' (410: the subscription is disabled), or
-- 'retry' with the delay in seconds before the next attempt (none: the schedule is
-- exhausted and the delivery fails). Returns how many were recorded; an outcome whose
-- lease was lost (it expired and another daemon claimed the delivery) is not.
CREATE OR REPLACE FUNCTION dualreg_outbox_done_many(p_owner text, p_outcomes jsonb)
RETURNS integer
LANGUAGE plpgsql
-- One primary-key probe per outcome, whatever the statistics say (as the claim).
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off
SET enable_mergejoin = off SET jit = off SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    n integer;
BEGIN
  WITH o AS (
    SELECT r.id, r.outcome, r.status, r.error, left(r.response, 2048) AS response,
           r.delay,
           CASE WHEN r.outcome = 'delivered' THEN 'delivered'
                WHEN r.outcome = 'gone' OR r.delay IS NULL THEN 'failed'
                ELSE 'pending' END AS state
      FROM jsonb_to_recordset(p_outcomes)
           AS r(id bigint, outcome text, status integer, error text, response text,
                delay double precision)
  ), recorded AS (
    UPDATE deliveries d
       SET status = o.state,
           last_status = o.status, last_error = o.error, last_response = o.response,
           delivered_at = CASE WHEN o.state = 'delivered' THEN now() END,
           next_attempt_at = CASE WHEN o.state = 'pending'
                                  THEN now() + make_interval(secs => o.delay)
                                  ELSE d.next_attempt_at END,
           lease_until = NULL, lease_owner = NULL
      FROM o
     WHERE d.id = o.id AND d.lease_owner = p_owner
    RETURNING d.subscription_id, o.outcome
  ), gone AS (
    UPDATE subscriptions s
       SET disabled_at = coalesce(s.disabled_at, now()),
           disabled_reason = 'the endpoint answered 410 Gone'
     WHERE s.id IN (SELECT r.subscription_id FROM recorded r WHERE r.outcome = 'gone')
  )
  SELECT count(*)::integer INTO n FROM recorded;
  RETURN n;
END $$;

-- Records one outcome (see dualreg_outbox_done_many); returns the delivery's new status,
-- or 'lease-lost'.
CREATE OR REPLACE FUNCTION dualreg_outbox_done(p_id bigint, p_owner text, p_outcome text,
                                               p_status integer, p_error text, p_response text,
                                               p_delay_s double precision)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF dualreg_outbox_done_many(p_owner, jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
           'id', p_id, 'outcome', p_outcome, 'status', p_status, 'error', p_error,
           'response', p_response, 'delay', p_delay_s)))) = 0 THEN
        RETURN 'lease-lost';
    END IF;
    RETURN (SELECT d.status FROM deliveries d WHERE d.id = p_id);
END $$;

-- The dispatcher's one round trip: records the outcomes it has (as
-- dualreg_outbox_done_many) and then claims up to p_limit deliveries (as
-- dualreg_outbox_claim), in one transaction. The claim runs after the outcomes are
-- written, so it sees the leases they gave back and the pupils' next deliveries.
CREATE OR REPLACE FUNCTION dualreg_outbox_cycle(p_owner text, p_outcomes jsonb,
                                                p_limit integer, p_per_sub integer,
                                                p_lease_s integer)
RETURNS TABLE (id bigint, event_id bigint, attempts integer, url text, secret text,
               previous_secret text, type text, occurred_at timestamptz, data jsonb,
               subscription_id bigint)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_outcomes IS NOT NULL AND jsonb_array_length(p_outcomes) > 0 THEN
        PERFORM dualreg_outbox_done_many(p_owner, p_outcomes);
    END IF;
    IF p_limit > 0 THEN
        RETURN QUERY SELECT * FROM dualreg_outbox_claim(p_owner, p_limit, p_per_sub, p_lease_s);
    END IF;
END $$;
