-- A replica takes over another's deliveries only once that one's lease has
-- been expired for a full lease while the taker itself was live without a
-- break: live_since is when the holder's current unbroken lease began (the
-- database's clock). losses counts the takeovers of the holder's
-- deliveries, so that the holder learns at its next renewal whether what it
-- claimed before is still its own.
ALTER TABLE webhook_leases
    ADD COLUMN live_since timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN losses     integer     NOT NULL DEFAULT 0;

-- Each claim statement tags the rows it claims with an id of its own: when
-- the statement fails, its process cannot know whether it committed, and
-- its next lease renewal hands back the rows of that id, which it never
-- got as jobs (a lease that is kept no longer lets them go by itself).
ALTER TABLE webhook_deliveries ADD COLUMN claim_batch uuid;
