-- Sync health: one document telling a school (or an operator) whether its integration
-- with dualreg is working, for GET /v1/schools/{urn}/sync and
-- `dualregctl sync status --school URN`, which both call dualreg_sync_health so that
-- they cannot disagree. Read-only, one statement, so every part comes from one snapshot.
-- The function is in functions/85_sync.sql; here are the column and indexes it needs.

-- When a feed last failed. The error text alone does not say whether it is from a
-- minute or a week ago; dualreg_pull_failed stamps it. Errors recorded before this
-- migration have no time.
ALTER TABLE schools ADD COLUMN pull_last_error_at timestamptz;

-- A subscription's finished deliveries by outcome and time of the last attempt: the
-- last day's delivered and failed counts and its newest failure are short index range
-- scans instead of a walk over every delivery it ever had. (Pending deliveries are
-- already indexed by subscription in deliveries_order, and are few while all is well.)
CREATE INDEX deliveries_finished ON deliveries (subscription_id, status, last_attempt_at)
    WHERE status <> 'pending';

-- The last mark the API recorded for a school, without scanning the school's history:
-- only API writes are indexed, so feeds and derived marks add nothing to this index.
CREATE INDEX mark_history_api ON mark_history (urn, changed_at) WHERE new_source = 'api';
