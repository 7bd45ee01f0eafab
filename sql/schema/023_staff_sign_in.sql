-- Failed sign-ins to the web app, per e-mail address (lower case), whether or not an
-- account has it, so that every daemon counts them alike and the limit tells nothing
-- about which addresses exist: sign-in allows 5 failures (a wrong password or second
-- factor) within 15 minutes, then refuses sign-in to that address until the oldest of
-- them is 15 minutes old. A complete sign-in forgets the address's failures; rows older
-- than 15 minutes are deleted as new ones are written.
CREATE TABLE staff_sign_in_failures (
    email  text NOT NULL CHECK (length(email) <= 254),
    at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX staff_sign_in_failures_email ON staff_sign_in_failures (email, at);
CREATE INDEX staff_sign_in_failures_at ON staff_sign_in_failures (at);

-- A staff user acts on /v1 through an API key of its own, kept by the daemon at sign-in:
-- name 'staff:<email>', the user's school (role 'school') or none (role 'admin'), and
-- token_hash 'staff:<user id>', which no bearer token hashes to (token hashes are 64 hex
-- digits), so the key is usable only through the user's session. Its id is what the
-- rate limit, Idempotency-Key records, marks and the access audit know the user by.
COMMENT ON COLUMN api_keys.token_hash IS
    'hex SHA-256 of the bearer token, or ''staff:<staff_users.id>'' for a staff user''s key';
