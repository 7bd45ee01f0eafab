-- The dual-registration data model: schools, pupils, registrations with versioned
-- schedules, marks with their amendment history, the event log that feeds the change
-- feed (and, later, webhook delivery), API keys and idempotency records.
-- The clock (dualreg_now, dualreg_today) and dualreg_emit are in functions/10_core.sql.

CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE schools (
    urn          text PRIMARY KEY CHECK (urn ~ '^[0-9]{6}$'),
    laestab      text UNIQUE CHECK (laestab ~ '^[0-9]{7}$'),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind         text NOT NULL CHECK (kind IN ('mainstream', 'pru', 'ap', 'special')),
    -- When each register closes: these defaults are the only place the default close
    -- times are written down; the API and dualregctl leave an unset time to them.
    am_close     time NOT NULL DEFAULT '09:15',
    pm_close     time NOT NULL DEFAULT '13:45',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Days a school is closed (inclusive ranges). No derived marks and no alerts on them.
CREATE TABLE school_closures (
    urn        text NOT NULL REFERENCES schools ON DELETE CASCADE,
    from_date  date NOT NULL,
    to_date    date NOT NULL,
    reason     text NOT NULL DEFAULT '',
    CHECK (to_date >= from_date),
    EXCLUDE USING gist (urn WITH =, daterange(from_date, to_date, '[]') WITH &&)
);

CREATE TABLE pupils (
    upn            text PRIMARY KEY CHECK (upn ~ '^[A-Z][0-9]{11}[0-9A-Z]$'),
    given_name     text NOT NULL CHECK (length(given_name) BETWEEN 1 AND 100),
    family_name    text NOT NULL CHECK (length(family_name) BETWEEN 1 AND 100),
    date_of_birth  date NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- A pupil on a school's admission register. At most one main registration at any date,
-- at most one subsidiary, never two registrations at one school at once. end_date is
-- the last day on roll (inclusive); NULL means open-ended.
CREATE TABLE registrations (
    id          bigserial PRIMARY KEY,
    upn         text NOT NULL REFERENCES pupils,
    urn         text NOT NULL REFERENCES schools,
    role        text NOT NULL CHECK (role IN ('main', 'subsidiary')),
    start_date  date NOT NULL,
    end_date    date CHECK (end_date IS NULL OR end_date >= start_date),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    EXCLUDE USING gist (upn WITH =, role WITH =,
                        daterange(start_date, end_date, '[]') WITH &&),
    EXCLUDE USING gist (upn WITH =, urn WITH =,
                        daterange(start_date, end_date, '[]') WITH &&)
);
CREATE INDEX registrations_urn ON registrations (urn, start_date);

-- The sessions a dual-registered pupil is expected at the subsidiary school, versioned
-- by the date a schedule takes effect so that past sessions keep their location.
-- mask: bit (weekday-1)*2 + (PM ? 1 : 0), Monday AM = bit 0 ... Friday PM = bit 9.
CREATE TABLE registration_schedules (
    registration_id  bigint NOT NULL REFERENCES registrations ON DELETE CASCADE,
    effective_from   date NOT NULL,
    mask             integer NOT NULL CHECK (mask BETWEEN 0 AND 1023),
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (registration_id, effective_from)
);

CREATE TABLE api_keys (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    role        text NOT NULL CHECK (role IN ('admin', 'school')),
    urn         text REFERENCES schools,
    token_hash  text NOT NULL UNIQUE,       -- hex SHA-256 of the bearer token
    prefix      text NOT NULL,              -- first characters, to recognise a key
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CHECK ((role = 'admin') = (urn IS NULL))
);

-- One row per pupil, school, date and session: the mark in force.
CREATE TABLE marks (
    upn           text NOT NULL REFERENCES pupils,
    urn           text NOT NULL REFERENCES schools,
    date          date NOT NULL,
    session       text NOT NULL CHECK (session IN ('AM', 'PM')),
    code          text NOT NULL REFERENCES attendance_codes,
    minutes_late  smallint CHECK (minutes_late BETWEEN 0 AND 600),
    comment       text,
    source        text NOT NULL CHECK (source IN ('api', 'pull', 'derived')),
    version       integer NOT NULL DEFAULT 1,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    key_id        bigint REFERENCES api_keys,
    PRIMARY KEY (upn, date, session, urn)
);
CREATE INDEX marks_school_day ON marks (urn, date, session);

-- Every change to a mark: what it was, what it became (new_code NULL: removed, as when
-- a derived D gives way after a schedule change), why, who and how.
CREATE TABLE mark_history (
    id                bigserial PRIMARY KEY,
    upn               text NOT NULL,
    urn               text NOT NULL,
    date              date NOT NULL,
    session           text NOT NULL,
    old_code          text,
    old_minutes_late  smallint,
    old_comment       text,
    old_source        text,
    new_code          text,
    new_minutes_late  smallint,
    new_comment       text,
    new_source        text,
    reason            text,
    key_id            bigint,
    key_name          text,
    changed_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mark_history_key ON mark_history (upn, date, session, id);

-- The event log. Readers page by (tx, id) and only up to the oldest transaction still
-- running, so an event committed late with a smaller id is never skipped.
-- urns: the schools the event concerns (who may read it, who is told); type: one of
-- event_types (014_event_types.sql).
CREATE TABLE events (
    id           bigserial PRIMARY KEY,
    tx           xid8 NOT NULL DEFAULT pg_current_xact_id(),
    type         text NOT NULL,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    upn          text,
    urns         text[] NOT NULL,
    data         jsonb NOT NULL
);
CREATE INDEX events_order ON events (tx, id);
CREATE INDEX events_upn ON events (upn, tx, id);

-- Idempotency-Key records: the first response to (key, Idempotency-Key) is replayed for
-- 24 hours to a request with the same body; state 'running' while the first is in
-- progress (taken over if it was abandoned).
CREATE TABLE idempotency_keys (
    key_id       bigint NOT NULL REFERENCES api_keys,
    idem_key     text NOT NULL,
    request_hash text NOT NULL,
    state        text NOT NULL CHECK (state IN ('running', 'done')),
    status       integer,
    content_type text,
    response     text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, idem_key)
);
CREATE INDEX idempotency_age ON idempotency_keys (created_at);
