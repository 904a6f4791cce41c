-- The W3C traceparent of the event a delivery was made for, so that every
-- attempt, retries hours later included, is traced as a child of the
-- event's trace. Empty when the event carried none.
ALTER TABLE webhook_deliveries ADD COLUMN traceparent text NOT NULL DEFAULT '';
