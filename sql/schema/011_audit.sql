-- Who read which pupil's data, when and through which endpoint. Each daemon writes its
-- records in batches about a second behind; repeated reads of one pupil by one key
-- through one endpoint within a batch are one row with their count and the first and
-- last time. Admins query them with GET /v1/audit.
CREATE TABLE access_audit (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL,      -- the first read
    last_at   timestamptz NOT NULL,      -- the last read
    reads     integer NOT NULL DEFAULT 1 CHECK (reads > 0),
    key_id    bigint,
    key_name  text,
    upn       text NOT NULL,
    endpoint  text NOT NULL
);
CREATE INDEX access_audit_upn ON access_audit (upn, id);
