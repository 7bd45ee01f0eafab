-- Marks ingest: the row types the rule engine (functions/40_marks.sql) passes between
-- its steps, and the index it needs. mark_history and marks are in 002_core.sql.

-- One item of a batch after the checks: its fields, the first rule it broke (error,
-- detail), and what the plan says about its session.
CREATE TYPE dualreg_mark_item AS (
    idx           integer,   -- position in the batch, from 0
    upn           text,
    urn           text,
    date          date,
    session       text,
    code          text,
    minutes_late  smallint,
    comment       text,
    reason        text,
    error         text,      -- NULL: passed every batch-independent rule
    detail        text,
    expected_urn  text,      -- the school expecting the pupil (dual registered only)
    urns          text[],    -- the pupil's schools that day (who is told)
    conflict      boolean,   -- a real mark at the school that does not expect the pupil
    dual_day      boolean,   -- dual registered on that date
    round         integer
);

CREATE TYPE dualreg_mark_result AS (idx integer, result jsonb);

-- One session of a dual-registered pupil's day plan (dualreg_day_plan), kept for the
-- batch so that checks and derivation ask the plan once per pupil and date.
CREATE TYPE dualreg_plan_row AS (
    upn           text,
    date          date,
    session       text,
    main_urn      text,
    sub_urn       text,
    expected_urn  text,
    other_urn     text,
    other_closed  boolean
);

-- Registrations are looked up by pupil on every mark; the exclusion constraints' GiST
-- indexes answer that several times slower than a B-tree.
CREATE INDEX registrations_upn ON registrations (upn, urn);
