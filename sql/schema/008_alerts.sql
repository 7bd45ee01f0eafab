-- Same-day safeguarding alerts for dual-registered pupils, delivered like every other
-- event (webhooks, change feed) to the school that does NOT expect the pupil that
-- session, usually the home school learning about its pupil at the PRU:
--  attendance.absent   the expected school recorded an absence (authorised or
--                      unauthorised category); raised when a session's mark at the
--                      expected school becomes an absence.
--  attendance.missing  no mark at the expected school by its register close time plus
--                      a grace period; once per pupil and session, never on weekends
--                      or closure days.
-- alerts_sent records each missing-mark alert once; the trigger and the check that
-- raise them are in functions/70_alerts.sql.

CREATE TABLE alerts_sent (
    upn      text NOT NULL,
    date     date NOT NULL,
    session  text NOT NULL,
    type     text NOT NULL,
    sent_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (upn, date, session, type)
);
