-- Push to schools' MIS: webhook subscriptions and the durable outbox of deliveries.
-- A delivery row is written in the same transaction as the event that causes it
-- (a trigger on events fans out), so nothing committed can be lost; the dispatcher claims due
-- rows with leases (FOR UPDATE SKIP LOCKED), so several daemons never send the same
-- delivery at once, and a daemon that dies hands its leases over when they expire.
-- The fan-out trigger, the claim and the outcome are in functions/60_outbox.sql.

CREATE TABLE subscriptions (
    id                bigserial PRIMARY KEY,
    urn               text NOT NULL REFERENCES schools,
    url               text NOT NULL CHECK (length(url) BETWEEN 8 AND 2000),
    events            text[] NOT NULL CHECK (cardinality(events) > 0),
    description       text NOT NULL DEFAULT '',
    secret            text NOT NULL,
    previous_secret   text,           -- still signs until previous_until (rotation)
    previous_until    timestamptz,
    disabled_at       timestamptz,    -- the endpoint answered 410 Gone
    disabled_reason   text,
    deleted_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_urn ON subscriptions (urn) WHERE deleted_at IS NULL;

CREATE TABLE deliveries (
    id               bigserial PRIMARY KEY,
    subscription_id  bigint NOT NULL REFERENCES subscriptions,
    event_id         bigint NOT NULL REFERENCES events,
    upn              text,             -- ordering key: one pupil's events in order
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    lease_owner      text,
    last_attempt_at  timestamptz,
    last_status      integer,
    last_error       text,
    last_response    text,             -- truncated response body, for diagnosis
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_order ON deliveries (subscription_id, upn, event_id)
    WHERE status = 'pending';
CREATE INDEX deliveries_list ON deliveries (subscription_id, id);
