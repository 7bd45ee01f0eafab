-- Staff accounts of the web app (dualregctl user add|list|disable|reset; the library in
-- include/dualreg/staff_auth.h). An account belongs to one school with the role staff or
-- lead, or is an admin's, with no school. It is made with a one-time set-up link: only
-- the SHA-256 of the link's token is kept, until it is used or expires. Set-up chooses
-- the password (kept as an Argon2id encoded string) and a TOTP secret, which counts once
-- a first code from it is confirmed. The TOTP secret is sealed with the daemon's keys
-- (secret_box.h, additional data "staff:<id>"), as webhook secrets are. A disabled
-- account signs in no more; its sessions end when it is disabled.
CREATE TABLE staff_users (
    id                 bigserial PRIMARY KEY,
    email              text NOT NULL CHECK (length(email) BETWEEN 3 AND 254
                                            AND email LIKE '%_@_%'),
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role               text NOT NULL CHECK (role IN ('staff', 'lead', 'admin')),
    urn                text REFERENCES schools,        -- NULL for an admin
    password_hash      text,                           -- Argon2id encoded; NULL until set
    totp_secret        text,                           -- sealed base32 secret
    totp_confirmed_at  timestamptz,                    -- NULL: set-up not finished
    totp_last_step     bigint,                         -- the last accepted code's time step
    disabled_at        timestamptz,
    setup_token_hash   text UNIQUE,                    -- hex SHA-256 of the set-up token
    setup_expires_at   timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'admin') = (urn IS NULL)),
    CHECK ((setup_token_hash IS NULL) = (setup_expires_at IS NULL)),
    CHECK (totp_confirmed_at IS NULL OR (totp_secret IS NOT NULL AND password_hash IS NOT NULL))
);
-- One account per e-mail address, whatever its case.
CREATE UNIQUE INDEX staff_users_email ON staff_users (lower(email));
CREATE INDEX staff_users_school ON staff_users (urn) WHERE urn IS NOT NULL;

-- The ten one-time recovery codes of an account, shown once at the end of set-up and
-- kept only as the hex SHA-256 of their normal form (xxxx-xxxx-xxxx, lower case). A code
-- used instead of a TOTP code is marked used and never accepted again. A reset of the
-- account deletes them.
CREATE TABLE staff_recovery_codes (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES staff_users ON DELETE CASCADE,
    code_hash   text NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, code_hash)
);

-- Signed-in browsers. The cookie carries a random token; only its hex SHA-256 is kept.
-- A session made by the password alone (second_factor_done false) serves only the
-- second factor's request. It ends when unused for [web] session_idle (last_seen_at),
-- at expires_at ([web] session_max after sign-in) in any case, at sign-out, and when
-- its account is disabled or reset. csrf_token is the value state-changing requests
-- must repeat in X-CSRF-Token (it is of no use without the cookie).
CREATE TABLE staff_sessions (
    token_hash          text PRIMARY KEY,
    user_id             bigint NOT NULL REFERENCES staff_users ON DELETE CASCADE,
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_seen_at        timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL,
    second_factor_done  boolean NOT NULL DEFAULT false,
    csrf_token          text NOT NULL,
    client_addr         text CHECK (length(client_addr) <= 64)
);
CREATE INDEX staff_sessions_user ON staff_sessions (user_id);
CREATE INDEX staff_sessions_expiry ON staff_sessions (expires_at);
