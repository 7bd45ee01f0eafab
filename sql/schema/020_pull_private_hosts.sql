-- A school's allowlist of feed hosts inside its own network. Feeds must be on public
-- addresses unless [pull] allow_private opens private ones for every school; with this
-- list an admin lets one school's feed reach a private address, and only when the
-- host of its pull_url is listed. Set by an admin only (PATCH /v1/schools/{urn}
-- pull_private_hosts, dualregctl school set --pull-private-hosts): a school's own key
-- cannot change it. Entries are lower-case host names or IP addresses in canonical
-- form, checked by dualreg_pull_hosts_normal (functions/80_pull.sql).

ALTER TABLE schools
    ADD COLUMN pull_private_hosts text[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(pull_private_hosts) <= 16
               AND length(array_to_string(pull_private_hosts, ' ')) <= 16 * 254);
