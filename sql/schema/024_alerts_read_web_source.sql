-- Two additions for the staff web app.
--
-- A day's alerts (GET /v1/alerts, dualreg_alerts in functions/70_alerts.sql) are found by
-- the date of the session they are about, which is in the event's data: an absence can
-- be recorded, and so alerted, days after the session. This index finds one day's alert
-- events directly; the date is kept as the data holds it (ISO 8601 text, which is how
-- jsonb writes a date whatever DateStyle says).
CREATE INDEX events_alert_day ON events ((data->>'date'), occurred_at)
    WHERE type IN ('attendance.absent', 'attendance.missing');

-- Marks recorded by a member of staff in the web app carry source 'web', besides the
-- JSON API ('api'), a pulled MIS feed ('pull') and dualreg's own D ('derived').
-- mark_history's old_source and new_source copy marks.source and have no check of their
-- own.
ALTER TABLE marks DROP CONSTRAINT marks_source_check;
ALTER TABLE marks ADD CONSTRAINT marks_source_check
    CHECK (source IN ('api', 'pull', 'web', 'derived'));
