-- Registrations by consent. A school key's registration that gives it, or another
-- school, access to a pupil's data is a request until the other school agrees:
-- registration_records holds every registration with its state, and the view
-- `registrations` shows only those in force, so every rule that reads `registrations`
-- (access, day plans, derived D, marks, reads, events) counts those and nothing else.
-- Rows existing before this step are in force. A change to a registration in force that
-- widens another school's exposure waits in registration_changes.

-- Names are compared case- and accent-insensitively when a school proves it knows a
-- pupil (functions/30_registry.sql, dualreg_name_key).
CREATE EXTENSION IF NOT EXISTS unaccent;

ALTER TABLE registrations RENAME TO registration_records;

-- state: pending (awaiting counterpart_urn's decision until expires_at), in_force,
-- declined, withdrawn (by the proposer) or expired. requested_by: the school whose key
-- proposed it (NULL: an admin, or made before this step).
ALTER TABLE registration_records
    ADD COLUMN state text NOT NULL DEFAULT 'in_force'
        CHECK (state IN ('pending', 'in_force', 'declined', 'withdrawn', 'expired')),
    ADD COLUMN requested_by text REFERENCES schools,
    ADD COLUMN counterpart_urn text REFERENCES schools,
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN decided_at timestamptz,
    ADD COLUMN decision_reason text CHECK (length(decision_reason) <= 500),
    ADD CHECK (state <> 'pending' OR (counterpart_urn IS NOT NULL AND expires_at IS NOT NULL));

-- The overlap rules hold among registrations in force only (the same constraint names,
-- which the daemon maps to 409 overlapping-registration).
ALTER TABLE registration_records
    DROP CONSTRAINT registrations_upn_role_daterange_excl,
    DROP CONSTRAINT registrations_upn_urn_daterange_excl;
ALTER TABLE registration_records
    ADD CONSTRAINT registrations_upn_role_daterange_excl
        EXCLUDE USING gist (upn WITH =, role WITH =, daterange(start_date, end_date, '[]') WITH &&)
        WHERE (state = 'in_force'),
    ADD CONSTRAINT registrations_upn_urn_daterange_excl
        EXCLUDE USING gist (upn WITH =, urn WITH =, daterange(start_date, end_date, '[]') WITH &&)
        WHERE (state = 'in_force');

CREATE INDEX registration_records_pending_expiry ON registration_records (expires_at)
    WHERE state = 'pending';
CREATE INDEX registration_records_awaiting ON registration_records (counterpart_urn)
    WHERE state = 'pending';
CREATE INDEX registration_records_requested ON registration_records (requested_by)
    WHERE state = 'pending';

-- The registrations in force: what every rule counts. Automatically updatable, so an
-- INSERT through it makes a registration in force (the column default).
CREATE VIEW registrations AS
    SELECT * FROM registration_records WHERE state = 'in_force';

-- A change to a registration in force awaiting the other school's decision: a new end
-- date (end_date_set; NULL reopens) and/or a schedule version (mask from
-- effective_from). At most one pending per registration.
CREATE TABLE registration_changes (
    id               bigserial PRIMARY KEY,
    registration_id  bigint NOT NULL REFERENCES registration_records ON DELETE CASCADE,
    end_date_set     boolean NOT NULL,
    end_date         date,
    mask             integer CHECK (mask BETWEEN 0 AND 1023),
    effective_from   date,
    requested_by     text NOT NULL REFERENCES schools,
    counterpart_urn  text NOT NULL REFERENCES schools,
    state            text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'applied', 'declined', 'withdrawn', 'expired')),
    expires_at       timestamptz NOT NULL,
    decided_at       timestamptz,
    decision_reason  text CHECK (length(decision_reason) <= 500),
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((mask IS NULL) = (effective_from IS NULL)),
    CHECK (end_date_set OR mask IS NOT NULL)
);
CREATE UNIQUE INDEX registration_changes_one_pending ON registration_changes (registration_id)
    WHERE state = 'pending';
CREATE INDEX registration_changes_pending_expiry ON registration_changes (expires_at)
    WHERE state = 'pending';

INSERT INTO event_types (type, description) VALUES
('registration.requested', 'a school asks for the other school''s consent to a registration or to a change of one'),
('registration.declined', 'the school asked declined a registration request or change'),
('registration.withdrawn', 'the school that asked withdrew a registration request or change'),
('registration.expired', 'a registration request or change expired without a decision');
