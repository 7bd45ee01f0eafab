-- The event log by school: one row per (school, event), so a school's change feed seeks
-- its own events in feed order (tx, id) instead of filtering every school's. Filled by
-- a trigger on events (functions/10_core.sql); a purged event takes its rows with it.
CREATE TABLE event_schools (
    urn       text NOT NULL,
    tx        xid8 NOT NULL,
    event_id  bigint NOT NULL REFERENCES events ON DELETE CASCADE,
    PRIMARY KEY (urn, tx, event_id)
);
CREATE INDEX event_schools_event ON event_schools (event_id);

INSERT INTO event_schools (urn, tx, event_id)
SELECT DISTINCT u.urn, e.tx, e.id
  FROM events e CROSS JOIN LATERAL unnest(e.urns) AS u(urn)
 WHERE u.urn IS NOT NULL;
