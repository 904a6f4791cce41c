-- Recoveries: "send again every event of this webhook's types stored in
-- EVENTS between since and until". The row is the durable state of the job:
-- a replica runs it under a lease (holder, lease_until) and records how far
-- it read (next_seq, a stream sequence), so that another replica, or the
-- same after a restart, resumes where it stopped.
CREATE TABLE webhook_recoveries (
    id                 uuid        PRIMARY KEY,
    webhook_id         uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    org_id             text        NOT NULL,
    since              timestamptz NOT NULL,
    until              timestamptz NOT NULL,
    last_seq           bigint      NOT NULL,          -- EVENTS' last sequence when asked: nothing later is in the window
    next_seq           bigint      NOT NULL DEFAULT 0, -- where to read next; 0: from since, by time
    status             text        NOT NULL CHECK (status IN ('RUNNING', 'SUCCEEDED', 'FAILED')),
    events_read        bigint      NOT NULL DEFAULT 0,
    deliveries_created bigint      NOT NULL DEFAULT 0,
    error              text        NOT NULL DEFAULT '',
    holder             uuid,
    lease_until        timestamptz NOT NULL DEFAULT now(),
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    finished_at        timestamptz
);
-- One running recovery per webhook.
CREATE UNIQUE INDEX webhook_recoveries_running ON webhook_recoveries (webhook_id) WHERE status = 'RUNNING';
CREATE INDEX webhook_recoveries_webhook ON webhook_recoveries (webhook_id, id DESC);

-- A recovered delivery is a new row for an event the webhook may already
-- have a delivery of: the (event, webhook) key stays unique among live
-- deliveries, and (recovery, event) among a recovery's, so that a resumed
-- recovery inserts nothing twice.
ALTER TABLE webhook_deliveries ADD COLUMN recovery_id uuid;
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_event_webhook;
CREATE UNIQUE INDEX webhook_deliveries_event_webhook ON webhook_deliveries (event_id, webhook_id) WHERE recovery_id IS NULL;
CREATE UNIQUE INDEX webhook_deliveries_recovered ON webhook_deliveries (recovery_id, event_id) WHERE recovery_id IS NOT NULL;
-- The recovery's deliveries still waiting, which pace it.
CREATE INDEX webhook_deliveries_recovery_pending ON webhook_deliveries (recovery_id) WHERE recovery_id IS NOT NULL AND status = 'PENDING';
