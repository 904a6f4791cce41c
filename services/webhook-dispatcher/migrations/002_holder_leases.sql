-- Claims belong to a running dispatcher process (its "holder" id), and the
-- process keeps one lease row alive for all of them: one renewal per
-- interval, however many deliveries it holds. A delivery it claimed has
-- holder set and no next_attempt_at; when the holder's lease runs out (the
-- process died), any other replica hands its deliveries back to the queue
-- and marks the attempts they had started as interrupted.
CREATE TABLE webhook_leases (
    holder     uuid        PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

ALTER TABLE webhook_deliveries ADD COLUMN holder uuid;

-- The queue: unheld pending rows by due time. A row is in exactly one of
-- the two indexes below while it matters (pending or held), as it was in
-- the one due index before, so claims and completions write no more index
-- entries than they did.
DROP INDEX webhook_deliveries_due;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'PENDING' AND holder IS NULL;
-- The deliveries of one holder, found when its lease runs out.
CREATE INDEX webhook_deliveries_held ON webhook_deliveries (holder) WHERE holder IS NOT NULL;
