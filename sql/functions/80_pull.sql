-- Pulled MIS feeds: for schools whose MIS only offers a feed, the daemon GETs
-- {pull_url}?since=<cursor> every pull_interval and applies the marks exactly as if the
-- school had posted them (dualreg_ingest_marks, source 'pull'), saving the cursor in
-- the same transaction so that a page is applied once, never twice and never lost.
-- A school is claimed with a lease (SKIP LOCKED), so with several daemons each feed is
-- read by one at a time. The token is kept for the daemon's requests and never shown.
-- The feed's settings and state are columns of schools; refused items are kept in
-- pull_rejections (schema/009_pull.sql, 013_sync_health.sql).

-- Claims up to p_limit feeds that are due, for p_lease_s seconds.
CREATE OR REPLACE FUNCTION dualreg_pull_claim(p_owner text, p_limit integer, p_lease_s integer)
RETURNS TABLE (urn text, url text, token text, cursor text)
LANGUAGE sql AS $$
  UPDATE schools s
     SET pull_lease_until = now() + make_interval(secs => p_lease_s), pull_lease_owner = p_owner
   WHERE s.urn IN (SELECT c.urn FROM schools c
                    WHERE c.pull_url IS NOT NULL AND c.pull_next_at <= now()
                      AND (c.pull_lease_until IS NULL OR c.pull_lease_until < now())
                    ORDER BY c.pull_next_at LIMIT p_limit
                    FOR UPDATE SKIP LOCKED)
  RETURNING s.urn, s.pull_url, s.pull_token, s.pull_cursor
$$;

-- Applies one page as the school (only by the lease holder, and only if the cursor is
-- still the one the page was asked for): ingests the marks, records refusals, saves
-- the cursor, all in the caller's transaction. p_more: another page is waiting.
-- Returns the ingest's counts plus {applied: true}, or {applied: false, why}.
CREATE OR REPLACE FUNCTION dualreg_pull_apply(p_urn text, p_owner text, p_since text,
                                              p_marks jsonb, p_next_cursor text,
                                              p_more boolean)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_school schools;
    v_result jsonb;
BEGIN
    SELECT * INTO v_school FROM schools WHERE urn = p_urn FOR UPDATE;
    IF NOT FOUND OR v_school.pull_lease_owner IS DISTINCT FROM p_owner THEN
        RETURN jsonb_build_object('applied', false, 'why', 'the lease was lost');
    END IF;
    IF v_school.pull_cursor IS DISTINCT FROM p_since THEN
        RETURN jsonb_build_object('applied', false, 'why', 'the cursor moved');
    END IF;
    v_result := dualreg_ingest_marks(p_marks, NULL, 'pull ' || p_urn, p_urn, 'pull');
    INSERT INTO pull_rejections (urn, cursor, item, error_type, detail)
    SELECT p_urn, p_since, p_marks -> ((r ->> 'index')::integer),
           r -> 'error' ->> 'type', coalesce(r -> 'error' ->> 'detail', '')
      FROM jsonb_array_elements(v_result -> 'results') r
     WHERE r ->> 'status' = 'rejected';
    UPDATE schools
       SET pull_cursor = p_next_cursor, pull_failures = 0, pull_last_error = NULL,
           pull_last_ok_at = now(),
           pull_next_at = CASE WHEN p_more THEN now()
                               ELSE now() + make_interval(secs => pull_interval_s) END,
           pull_lease_until = CASE WHEN p_more THEN pull_lease_until END,
           pull_lease_owner = CASE WHEN p_more THEN pull_lease_owner END
     WHERE urn = p_urn;
    RETURN v_result || jsonb_build_object('applied', true);
END $$;

-- Records a failed pull: backs off (interval doubled per failure, at most an hour),
-- stamps when it failed and gives the lease up.
CREATE OR REPLACE FUNCTION dualreg_pull_failed(p_urn text, p_owner text, p_error text)
RETURNS void LANGUAGE sql AS $$
  UPDATE schools
     SET pull_failures = pull_failures + 1, pull_last_error = left(p_error, 500),
         pull_last_error_at = now(),
         pull_next_at = now() + make_interval(secs => least(3600,
                             pull_interval_s * power(2, least(pull_failures, 10))::integer)),
         pull_lease_until = NULL, pull_lease_owner = NULL
   WHERE urn = p_urn AND pull_lease_owner = p_owner
$$;

-- Gives the lease up after a run that applied every page.
CREATE OR REPLACE FUNCTION dualreg_pull_release(p_urn text, p_owner text) RETURNS void
LANGUAGE sql AS $$
  UPDATE schools SET pull_lease_until = NULL, pull_lease_owner = NULL
   WHERE urn = p_urn AND pull_lease_owner = p_owner
$$;

-- The feed's state and its latest refusals, for GET /v1/schools/{urn}/pull.
CREATE OR REPLACE FUNCTION dualreg_pull_status(p_urn text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
           'url', s.pull_url, 'interval', s.pull_interval_s,
           'token_set', s.pull_token IS NOT NULL, 'cursor', s.pull_cursor,
           'next_at', CASE WHEN s.pull_url IS NOT NULL THEN s.pull_next_at END,
           'last_ok_at', s.pull_last_ok_at, 'last_error', s.pull_last_error,
           'failures', s.pull_failures,
           'rejections', coalesce((
             SELECT jsonb_agg(jsonb_build_object('pulled_at', x.pulled_at, 'cursor', x.cursor,
                                                 'item', x.item, 'error', jsonb_build_object(
                                                   'type', x.error_type, 'detail', x.detail))
                              ORDER BY x.id DESC)
               FROM (SELECT * FROM pull_rejections WHERE urn = s.urn
                      ORDER BY id DESC LIMIT 100) x), '[]'::jsonb))
    FROM schools s WHERE s.urn = p_urn
$$;

-- A school's allowlist of private feed hosts (schema/020_pull_private_hosts.sql),
-- checked and in canonical form: at most 16 entries, each a host name (labels of
-- letters, digits and hyphens; at most 253 characters; lower-cased, no final dot) or
-- an IP address (an IPv6 one with or without brackets; written as PostgreSQL writes
-- it). Duplicates are dropped. A bad entry is refused: 422 invalid-field with the
-- pointer /pull_private_hosts/N.
CREATE OR REPLACE FUNCTION dualreg_pull_hosts_normal(p_hosts text[]) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    v_out text[] := '{}';
    v_in text;
    v_host text;
    v_ip inet;
    i integer := 0;
BEGIN
    IF cardinality(p_hosts) > 16 THEN
        PERFORM dualreg_fail(422, 'invalid-field', 'at most 16 hosts', '/pull_private_hosts');
    END IF;
    FOREACH v_in IN ARRAY coalesce(p_hosts, '{}') LOOP
        v_host := lower(btrim(v_in));
        IF v_host ~ '^\[.*\]$' THEN
            v_host := substr(v_host, 2, length(v_host) - 2);
        END IF;
        v_ip := NULL;
        IF v_host ~ '^([0-9]+\.){3}[0-9]+$' OR v_host ~ '^[0-9a-f:.]*:[0-9a-f:.]*$' THEN
            BEGIN
                v_ip := v_host::inet;
            EXCEPTION WHEN invalid_text_representation THEN
                v_ip := NULL;
            END;
        END IF;
        IF masklen(v_ip) = 32 AND family(v_ip) = 4 OR masklen(v_ip) = 128 THEN
            v_host := host(v_ip);
        ELSIF v_host ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$'
              AND length(v_host) <= 254 AND v_host !~ '^[0-9.]+$' THEN
            v_host := rtrim(v_host, '.');
        ELSE
            PERFORM dualreg_fail(422, 'invalid-field',
                                 format('%s is not a host name or an IP address',
                                        left(quote_literal(coalesce(v_in, 'null')), 80)),
                                 '/pull_private_hosts/' || i);
        END IF;
        IF NOT v_host = ANY (v_out) THEN
            v_out := v_out || v_host;
        END IF;
        i := i + 1;
    END LOOP;
    RETURN v_out;
END $$;
