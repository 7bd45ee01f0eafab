-- Who read which pupil's data, when and through which endpoint. Reads are recorded in
-- batches by each daemon (at most about a second behind) and kept like the marks
-- themselves; admins query them with GET /v1/audit.
CREATE TABLE access_audit (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL,
    key_id    bigint,
    key_name  text,
    upn       text NOT NULL,
    endpoint  text NOT NULL
);
CREATE INDEX access_audit_upn ON access_audit (upn, id);
