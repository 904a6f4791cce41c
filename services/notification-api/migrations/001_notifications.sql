-- One row per (event, recipient). The unique key makes ingest idempotent:
-- a redelivered or republished event inserts nothing new.
CREATE TABLE notifications (
    id         uuid        PRIMARY KEY,            -- UUIDv7: time-ordered
    user_id    text        NOT NULL,
    org_id     text        NOT NULL,
    event_id   text        NOT NULL,
    type       text        NOT NULL,
    priority   text        NOT NULL,
    title      text        NOT NULL,
    message    text        NOT NULL,
    data       jsonb       NOT NULL DEFAULT '{}',
    read_at    timestamptz,
    created_at timestamptz NOT NULL,
    CONSTRAINT notifications_event_user UNIQUE (event_id, user_id)
);

-- Keyset pagination of one user's notifications, newest first.
CREATE INDEX notifications_user_created ON notifications (user_id, created_at DESC, id DESC);
-- Unread badge and unread filters: only unread rows are indexed.
CREATE INDEX notifications_user_unread ON notifications (user_id, created_at DESC, id DESC) WHERE read_at IS NULL;
