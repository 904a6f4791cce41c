-- Secret rotation with overlap: the secret being replaced, sealed as it
-- was (same key id, same AAD: the webhook id), signs deliveries next to the
-- new one until previous_secret_until.
ALTER TABLE webhooks
    ADD COLUMN previous_secret_ciphertext bytea,
    ADD COLUMN previous_secret_key_id     text,
    ADD COLUMN previous_secret_until      timestamptz;
