-- The statement of store.WebhookStats under EXPLAIN; -v hook=<uuid> picks the webhook:
-- 00000000-0000-7000-8000-000000000001 (busy: 50,000 in 24 h, capped at 10,000) or …0002 (1/100 of the rest).
\set floor '''' `python3 -c "import time,uuid;ms=int((time.time()-86400)*1000);print(str(uuid.UUID(bytes=ms.to_bytes(6,'big')+bytes(10))))"` ''''
EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, SUMMARY ON)
WITH edge AS (
  SELECT coalesce((SELECT id FROM webhook_deliveries WHERE webhook_id = :'hook' AND id >= :floor::uuid
    ORDER BY id DESC OFFSET 9999 LIMIT 1), :floor::uuid) AS id),
d AS MATERIALIZED (
  SELECT status, attempts FROM webhook_deliveries
  WHERE webhook_id = :'hook' AND org_id = 'org-x' AND id >= (SELECT id FROM edge)),
a AS (
  SELECT e->>'outcome' AS outcome, (e->>'durationMs')::float8 AS ms, e ? 'statusCode' AS answered, e
  FROM d, jsonb_array_elements(d.attempts) AS e
  WHERE e->>'outcome' NOT IN ('started', 'interrupted'))
SELECT
  (SELECT jsonb_build_object('total', count(*), 'pending', count(*) FILTER (WHERE status = 'PENDING'),
     'succeeded', count(*) FILTER (WHERE status = 'SUCCEEDED'), 'failed', count(*) FILTER (WHERE status = 'FAILED')) FROM d) AS deliveries,
  count(*) AS attempts,
  count(*) FILTER (WHERE outcome = 'success') AS attempts_ok,
  percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY ms) FILTER (WHERE answered) AS pct,
  (SELECT e FROM a WHERE outcome <> 'success' ORDER BY (e->>'at')::timestamptz DESC LIMIT 1) AS last_error
FROM a;
