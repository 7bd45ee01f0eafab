-- Sync health: one document telling a school (or an operator) whether its integration
-- with dualreg is working, for GET /v1/schools/{urn}/sync and
-- `dualregctl sync status --school URN`, which both call dualreg_sync_health so that
-- they cannot disagree. Read-only, one statement, so every part comes from one snapshot.

-- The health of one school's integration, or NULL if there is no such school.
--   subscriptions: each webhook subscription not deleted, by id:
--     state 'active' or 'disabled' (the endpoint answered 410 Gone); backlog: deliveries
--     not yet delivered (including those waiting for their next retry);
--     oldest_undelivered_age_s: whole seconds since the oldest of them was queued;
--     delivered_24h / failed_24h: deliveries whose final attempt, within the last 24
--     hours, succeeded / exhausted the retry schedule (or met 410 Gone);
--     last_error / last_error_at: the newest error still recorded on a delivery (an
--     attempt that later succeeded no longer carries its error) and when that attempt
--     was made.
--   pull: null without a pull_url; else the feed (never its token) with state
--     'failing' (the last attempt failed: failures > 0), 'never-pulled' (no attempt has
--     finished yet) or 'ok' (the last attempt applied its pages), the cursor, the last
--     success, the last error and when, consecutive failures, the next attempt, how many
--     refused items are kept and where to read them.
--   last_api_mark_at: when the API last created or amended a mark for the school (a
--     re-sent identical mark changes nothing and is not counted); marks from the feed,
--     from staff in the web app (source 'web', not the school's integration) and
--     derived D marks are not API marks.
CREATE OR REPLACE FUNCTION dualreg_sync_health(p_urn text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
           'urn', s.urn,
           'subscriptions', coalesce((
             SELECT jsonb_agg(jsonb_build_object(
                      'id', b.id, 'url', b.url,
                      'state', CASE WHEN b.disabled_at IS NULL THEN 'active' ELSE 'disabled' END,
                      'backlog', q.backlog,
                      -- now() is when this statement's transaction began: a delivery
                      -- queued since then would otherwise have a negative age
                      'oldest_undelivered_age_s', CASE WHEN q.oldest IS NOT NULL THEN
                        greatest(0, floor(extract(epoch FROM now() - q.oldest)))::bigint END,
                      'delivered_24h', f.delivered, 'failed_24h', f.failed,
                      'last_error', e.last_error, 'last_error_at', e.last_attempt_at)
                    ORDER BY b.id)
               FROM subscriptions b
               CROSS JOIN LATERAL (
                 SELECT count(*) AS backlog, min(d.created_at) AS oldest
                   FROM deliveries d
                  WHERE d.subscription_id = b.id AND d.status = 'pending') q
               CROSS JOIN LATERAL (
                 SELECT count(*) FILTER (WHERE d.status = 'delivered') AS delivered,
                        count(*) FILTER (WHERE d.status = 'failed') AS failed
                   FROM deliveries d
                  WHERE d.subscription_id = b.id AND d.status IN ('delivered', 'failed')
                    AND d.last_attempt_at >= now() - interval '24 hours') f
               LEFT JOIN LATERAL (
                 -- A delivered delivery carries no error: the newest error is on a pending
                 -- one (bounded by the backlog) or on the newest failed one (the index).
                 SELECT x.last_error, x.last_attempt_at
                   FROM ((SELECT d.last_error, d.last_attempt_at FROM deliveries d
                           WHERE d.subscription_id = b.id AND d.status = 'pending'
                             AND d.last_error IS NOT NULL AND d.last_attempt_at IS NOT NULL
                           ORDER BY d.last_attempt_at DESC LIMIT 1)
                         UNION ALL
                         (SELECT d.last_error, d.last_attempt_at FROM deliveries d
                           WHERE d.subscription_id = b.id AND d.status = 'failed'
                             AND d.last_error IS NOT NULL AND d.last_attempt_at IS NOT NULL
                           ORDER BY d.last_attempt_at DESC LIMIT 1)) x
                  ORDER BY x.last_attempt_at DESC LIMIT 1) e ON true
              WHERE b.urn = s.urn AND b.deleted_at IS NULL), '[]'::jsonb),
           'pull', CASE WHEN s.pull_url IS NOT NULL THEN jsonb_build_object(
                     'url', s.pull_url,
                     'state', CASE WHEN s.pull_failures > 0 THEN 'failing'
                                   WHEN s.pull_last_ok_at IS NULL THEN 'never-pulled'
                                   ELSE 'ok' END,
                     'cursor', s.pull_cursor,
                     'last_ok_at', s.pull_last_ok_at,
                     'last_error', s.pull_last_error,
                     'last_error_at', CASE WHEN s.pull_last_error IS NOT NULL
                                           THEN s.pull_last_error_at END,
                     'failures', s.pull_failures,
                     'next_at', s.pull_next_at,
                     'rejected', (SELECT count(*) FROM pull_rejections r WHERE r.urn = s.urn),
                     'rejections_url', '/v1/schools/' || s.urn || '/pull') END,
           'last_api_mark_at', (SELECT max(h.changed_at) FROM mark_history h
                                 WHERE h.urn = s.urn AND h.new_source = 'api'))
    FROM schools s WHERE s.urn = p_urn
$$;
