-- The marks rule engine checks each item against its lists of rules (dualreg_mark_rules
-- and dualreg_mark_write_rules, functions/40_marks.sql). The rules read an item's facts:
-- what the item says and what the database knows about it, gathered for the whole batch
-- at once.
-- A rule that needs a fact not listed here adds it with ALTER TYPE ... ADD ATTRIBUTE in
-- a new schema step (the functions are installed after the schema steps).
CREATE TYPE dualreg_mark_facts AS (
    idx           integer,   -- position in the batch, from 0
    is_object     boolean,   -- the item is a JSON object
    upn           text,      -- each field: NULL unless a JSON string (date: a real date)
    urn           text,
    date          date,
    session       text,
    code          text,
    ml_type       text,      -- JSON type of minutes_late ('null' when absent)
    ml            numeric,   -- minutes_late when a JSON number
    comment_type  text,
    comment       text,
    reason_type   text,
    reason        text,
    acting_urn    text,      -- the only school the caller may write for (NULL: any)
    today         date,
    upn_ok        boolean,   -- upn / urn well formed
    urn_ok        boolean,
    pupil_known   boolean,
    school_known  boolean,
    reg_ok        boolean,   -- registered at urn on date
    code_known    boolean,
    valid_from    date,      -- the code's validity
    valid_to      date,
    dual_day      boolean,   -- dual registered on date
    main_urn      text,      -- the plan of the session (dual registered only)
    sub_urn       text,
    expected_urn  text,
    other_urn     text
);

-- An item carries its facts through the write rounds, where the rule that depends on the
-- stored mark (reason-required) is checked.
ALTER TYPE dualreg_mark_item ADD ATTRIBUTE facts dualreg_mark_facts;
