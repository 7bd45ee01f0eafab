-- Access records name the school a reader acts for, and the webhook subscription when
-- the pupil's data was delivered to one. A school key's records carry its school; a
-- webhook's records carry the subscription's school and the subscription, with key_id
-- NULL and key_name 'webhook:<subscription id>' (endpoint 'webhook'). Admin keys act
-- for no school (urn NULL).
ALTER TABLE access_audit
    ADD COLUMN urn             text,
    ADD COLUMN subscription_id bigint;
