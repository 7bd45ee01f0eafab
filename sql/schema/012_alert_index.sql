-- Recent alerts are counted on every metrics scrape: an index on just the alert events
-- keeps that from scanning the whole event log.
CREATE INDEX events_alerts ON events (occurred_at, type)
    WHERE type IN ('attendance.absent', 'attendance.missing');
