-- Webhooks of an organization. The signing secret is stored encrypted
-- (AES-256-GCM, nonce prepended) with the id of the key that sealed it.
CREATE TABLE webhooks (
    id                uuid        PRIMARY KEY,          -- UUIDv7: time-ordered
    org_id            text        NOT NULL,
    url               text        NOT NULL,
    events            text[]      NOT NULL,
    description       text        NOT NULL DEFAULT '',
    secret_ciphertext bytea       NOT NULL,
    secret_key_id     text        NOT NULL,
    secret_hint       text        NOT NULL,
    status            text        NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'INACTIVE', 'FAILED')),
    failure_count     integer     NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX webhooks_org ON webhooks (org_id, id DESC);

-- One row per (event, webhook): the unique key makes fan-out idempotent.
-- The row is also the job of the retry queue: a PENDING row is due at
-- next_attempt_at, and a worker that claims it pushes next_attempt_at ahead
-- by a lease and bumps claim, so that a crashed worker's rows come back when
-- the lease runs out and a late completion of a stale claim changes nothing.
CREATE TABLE webhook_deliveries (
    id              uuid        PRIMARY KEY,            -- UUIDv7; X-Webhook-Id
    webhook_id      uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    org_id          text        NOT NULL,
    event_id        text        NOT NULL,
    event           text        NOT NULL,               -- webhook event name
    body            bytea       NOT NULL,               -- the exact bytes signed and sent
    status          text        NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    attempt_count   integer     NOT NULL DEFAULT 0,
    attempts        jsonb       NOT NULL DEFAULT '[]',
    next_attempt_at timestamptz,
    claim           integer     NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    CONSTRAINT webhook_deliveries_event_webhook UNIQUE (event_id, webhook_id)
);
-- The queue: only pending rows are indexed, by due time.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'PENDING';
-- The delivery log of one webhook, newest first; also how a disabled
-- webhook's pending rows are found (rare enough not to deserve an index of
-- its own, which every insert would pay for).
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (webhook_id, id DESC);
