-- Secrets at rest. Webhook signing secrets and feed bearer tokens are stored sealed
-- (AES-256-GCM) by the daemon and dualregctl with a key from [secrets] key_file, in the
-- text form "v1:<key id>:<base64>" (daemon/secret_box.c); the database never holds the
-- key. Values written before a key file was configured stay plaintext until
-- `dualregctl secrets rotate-key` seals them.

-- A sealed 4000-character token is about 5400 characters long.
ALTER TABLE schools DROP CONSTRAINT schools_pull_token_check;
ALTER TABLE schools ADD CONSTRAINT schools_pull_token_check
    CHECK (length(pull_token) BETWEEN 1 AND 6000);

COMMENT ON COLUMN subscriptions.secret IS
    'the signing secret, sealed for "subscription:<id>" (or plaintext from before encryption)';
COMMENT ON COLUMN subscriptions.previous_secret IS
    'the secret before the last rotation, sealed like secret; signs until previous_until';
COMMENT ON COLUMN schools.pull_token IS
    'the feed''s bearer token, sealed for "school:<urn>" (or plaintext from before encryption)';

-- A secret is shown once: stored Idempotency-Key responses that carry one (subscription
-- creation and rotation, recorded before replays were redacted) keep everything else.
UPDATE idempotency_keys
   SET response = (response::jsonb || '{"secret": null, "secret_already_shown": true}')::text
 WHERE state = 'done' AND status BETWEEN 200 AND 299
   AND content_type LIKE 'application/json%'
   AND response LIKE '%"secret":"whsec\_%';
