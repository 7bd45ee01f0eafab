-- The event types: the one list of what dualreg tells schools (the change feed, webhooks,
-- alerts). Subscriptions are validated against it, and the event log and the alert
-- record may only hold a type listed here. api/openapi.yaml's EventType enum must list
-- the same types (a test compares them). A new event type is a row added by a new
-- schema step, before any function emits it.

CREATE TABLE event_types (
    type         text PRIMARY KEY CHECK (type ~ '^[a-z]+\.[a-z]+$'),
    description  text NOT NULL
);

INSERT INTO event_types (type, description) VALUES
('mark.recorded', 'a school''s mark was created or amended (data carries the previous code)'),
('mark.derived', 'a derived D mark was created or removed (data.action)'),
('mark.conflict', 'a real mark was recorded at the school that does not expect the pupil that session'),
('registration.created', 'a registration was created'),
('registration.changed', 'a registration''s schedule or end date changed (other than ending it)'),
('registration.ended', 'a registration was given an end date'),
('attendance.absent', 'the school expecting a dual-registered pupil recorded an absence'),
('attendance.missing', 'the school expecting a dual-registered pupil has no mark by its register close time plus the grace period');

-- Existing rows are checked as the constraints are added: a database holding an event of
-- another type refuses this step and rolls it back, rather than keeping a type nobody
-- subscribes to.
ALTER TABLE events
    ADD CONSTRAINT events_type_fkey FOREIGN KEY (type) REFERENCES event_types;
ALTER TABLE alerts_sent
    ADD CONSTRAINT alerts_sent_type_fkey FOREIGN KEY (type) REFERENCES event_types;
