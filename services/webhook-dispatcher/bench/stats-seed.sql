-- Seed for the cost of GET /api/v1/webhooks/:id/stats (store.WebhookStats): a
-- realistic delivery log on a database migrated by the dispatcher (BENCHMARKS.md).
-- 100 webhooks; 1,000,000 deliveries over 7 days spread over them, the
-- measured one getting 50,000 in the last 24 h (busy endpoint) plus its share.
INSERT INTO webhooks (id, org_id, url, events, secret_ciphertext, secret_key_id, secret_hint, status, created_at, updated_at)
SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, 'org-' || (g % 10), 'https://example.com/h', '{BOOKING_CREATED}', '\x00', 'k', '…abcd', 'ACTIVE', now(), now()
FROM generate_series(1, 100) g;
-- uuidv7-like ids from a timestamp: 48-bit ms, then random.
CREATE FUNCTION v7(t timestamptz) RETURNS uuid LANGUAGE sql AS $$
  SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7' || substr(md5(random()::text), 1, 19))::uuid $$;
INSERT INTO webhook_deliveries (id, webhook_id, org_id, event_id, event, body, status, attempt_count, attempts, created_at, updated_at)
SELECT v7(t), w, 'org-x', md5(g::text), 'BOOKING_CREATED', convert_to(repeat('x', 300), 'UTF8'),
  CASE WHEN g % 10 = 0 THEN 'FAILED' ELSE 'SUCCEEDED' END, 1 + (g % 10 = 0)::int * 2,
  CASE WHEN g % 10 = 0 THEN jsonb_build_array(
      jsonb_build_object('number', 1, 'at', t, 'durationMs', 30 + g % 200, 'outcome', 'http_error', 'statusCode', 503, 'error', 'HTTP 503', 'responseExcerpt', 'down'),
      jsonb_build_object('number', 2, 'at', t + interval '30 s', 'durationMs', 2000, 'outcome', 'timeout', 'error', 'timeout: no complete answer within 10s', 'responseExcerpt', ''),
      jsonb_build_object('number', 3, 'at', t + interval '90 s', 'durationMs', 40, 'outcome', 'http_error', 'statusCode', 500, 'error', 'HTTP 500', 'responseExcerpt', 'err'))
    ELSE jsonb_build_array(jsonb_build_object('number', 1, 'at', t, 'durationMs', 20 + g % 300, 'outcome', 'success', 'statusCode', 200, 'responseExcerpt', 'ok')) END,
  t, t
FROM (SELECT g, CASE WHEN g <= 50000 THEN '00000000-0000-7000-8000-000000000001'::uuid
                     ELSE ('00000000-0000-7000-8000-' || lpad(to_hex(1 + g % 100), 12, '0'))::uuid END AS w,
             CASE WHEN g <= 50000 THEN now() - random() * interval '24 h' ELSE now() - random() * interval '7 days' END AS t
      FROM generate_series(1, 1000000) g) s;
ANALYZE webhook_deliveries;
