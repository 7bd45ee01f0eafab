-- Pupil records erased because they were created in error (dualregctl pupil erase): what
-- was removed and who asked, never whom it was about. The pupil's UPN, names and date of
-- birth are gone with the record; only counts, the operator and the reason remain.
CREATE TABLE erasures (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    operator  text NOT NULL,        -- the operating-system user and the database role
    reason    text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    forced    boolean NOT NULL,     -- statutory records younger than six years went too
    removed   jsonb NOT NULL        -- {"marks": n, "events": n, ...}
);
