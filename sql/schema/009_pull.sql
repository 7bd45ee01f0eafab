-- Pulled MIS feeds: for schools whose MIS only offers a feed, the daemon GETs
-- {pull_url}?since=<cursor> every pull_interval and applies the marks exactly as if the
-- school had posted them (dualreg_ingest_marks, source 'pull'), saving the cursor in
-- the same transaction so that a page is applied once, never twice and never lost.
-- A school is claimed with a lease (SKIP LOCKED), so with several daemons each feed is
-- read by one at a time. The token is kept for the daemon's requests and never shown.
-- The claim, the page's application and the feed's state are in functions/80_pull.sql.

ALTER TABLE schools
    ADD COLUMN pull_url          text CHECK (length(pull_url) BETWEEN 8 AND 2000),
    ADD COLUMN pull_token        text CHECK (length(pull_token) BETWEEN 1 AND 4000),
    ADD COLUMN pull_interval_s   integer NOT NULL DEFAULT 60
                                 CHECK (pull_interval_s BETWEEN 10 AND 86400),
    ADD COLUMN pull_cursor       text,
    ADD COLUMN pull_next_at      timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN pull_lease_until  timestamptz,
    ADD COLUMN pull_lease_owner  text,
    ADD COLUMN pull_failures     integer NOT NULL DEFAULT 0,
    ADD COLUMN pull_last_error   text,
    ADD COLUMN pull_last_ok_at   timestamptz;

-- Items a feed sent that were refused, with the reason, for the school to correct.
CREATE TABLE pull_rejections (
    id          bigserial PRIMARY KEY,
    urn         text NOT NULL REFERENCES schools,
    pulled_at   timestamptz NOT NULL DEFAULT now(),
    cursor      text,
    item        jsonb NOT NULL,
    error_type  text NOT NULL,
    detail      text NOT NULL
);
CREATE INDEX pull_rejections_urn ON pull_rejections (urn, id);
