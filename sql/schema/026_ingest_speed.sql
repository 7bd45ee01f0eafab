-- Mark ingest writes, per mark, a mark, its history row, its events and their filing
-- under each school; this step removes work from that path that proves nothing.
--
-- event_schools.event_id referenced events (ON DELETE CASCADE). The only writer of
-- event_schools is the statement trigger on events (dualreg_events_inserted,
-- functions/10_core.sql), which files rows of events inserted by that same statement, so
-- the referenced event always exists and cannot be deleted by anyone else before the
-- inserting transaction commits; the foreign key's check, one index probe and row lock
-- per filed row (two per mark), proved nothing. Its other duty, the cascade, is kept by
-- a statement trigger on events (dualreg_events_deleted, also in 10_core.sql): deleting
-- events deletes their rows here in the same statement, and TRUNCATE of events empties
-- this table.
ALTER TABLE event_schools DROP CONSTRAINT event_schools_event_id_fkey;

-- Every mark looks up the pupil's registrations in force: at its school on its date (the
-- rules), and the main and subsidiary ones on its date (the day plans). The exclusion
-- constraints' GiST indexes on (upn, urn | role, dates) matched those lookups and the
-- planner took them, but a GiST probe costs several times a B-tree's. These B-trees
-- carry every column the lookups read, so each is one index-only probe.
CREATE INDEX registration_records_upn_urn ON registration_records (upn, urn, start_date)
    INCLUDE (end_date) WHERE state = 'in_force';
CREATE INDEX registration_records_upn_role ON registration_records (upn, role, start_date)
    INCLUDE (end_date, urn, id) WHERE state = 'in_force';

-- Every mark inserted or changed ran four foreign-key checks, an SPI query and a row lock
-- each, per row; every event one more (its type). Three of the marks' references (the
-- school, the code, the key) and the event's type point at reference rows that dualreg
-- never deletes: schools, attendance_codes (schema steps add codes, none removes one),
-- api_keys (revoked, never deleted) and event_types. The same guarantees are kept set-
-- based by statement triggers (functions/40_marks.sql and 10_core.sql): each statement
-- that writes marks or events checks its new rows once, after taking the KEY SHARE locks
-- a foreign key takes on the rows named (one per distinct school, code, key or type, not
-- one per row), and a delete or key change of a referenced row, or a TRUNCATE of
-- attendance_codes or event_types, is refused while a mark or event names it. The error
-- is the foreign key's (SQLSTATE 23503, the same constraint name). The pupil keeps its
-- foreign key: pupils are deleted (purge, erasure).
ALTER TABLE marks DROP CONSTRAINT marks_urn_fkey,
                  DROP CONSTRAINT marks_code_fkey,
                  DROP CONSTRAINT marks_key_id_fkey;
ALTER TABLE events DROP CONSTRAINT events_type_fkey;
