package store

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Stats is the health of one webhook over a window: the attempts recorded
// on the deliveries created in it.
type Stats struct {
	From, To time.Time
	// Deliveries created in the window, and how many are in each status.
	Deliveries, Pending, Succeeded, Failed int
	// Attempts recorded on them (finished ones: not those under way or
	// interrupted), and how many were answered with a 2xx.
	Attempts, AttemptsOK int
	// P50Ms and P95Ms are the response times of the attempts that got an
	// answer (any status); not valid when none did.
	P50Ms, P95Ms sql.NullFloat64
	// Sampled is set when the window held more than the deliveries looked
	// at: the figures are those of the latest ones.
	Sampled   bool
	LastError *Attempt
}

// StatsLimit bounds the deliveries one Stats call reads.
const StatsLimit = 10_000

// uuidV7Floor is the smallest UUIDv7 of time t: delivery ids are UUIDv7, so
// "created since t" is a range of the (webhook_id, id) index.
func uuidV7Floor(t time.Time) uuid.UUID {
	var u uuid.UUID
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(t.UnixMilli()))
	copy(u[:6], ms[2:])
	return u
}

// WebhookStats computes the health of a webhook of org over the deliveries
// created in the last window (at most the latest StatsLimit of them), in
// one statement over the delivery log's index.
func (s *Store) WebhookStats(ctx context.Context, org string, webhookID uuid.UUID, window time.Duration) (Stats, error) {
	now := time.Now().UTC()
	st := Stats{From: now.Add(-window), To: now}
	from := st.From
	var row struct {
		Deliveries int             `db:"deliveries"`
		Pending    int             `db:"pending"`
		Succeeded  int             `db:"succeeded"`
		Failed     int             `db:"failed"`
		Attempts   int             `db:"attempts"`
		AttemptsOK int             `db:"attempts_ok"`
		P50        sql.NullFloat64 `db:"p50"`
		P95        sql.NullFloat64 `db:"p95"`
		LastError  []byte          `db:"last_error"`
	}
	// edge is the id of the StatsLimit-th newest delivery of the window, found
	// on the index alone, so that the rows read are those of the cap without
	// sorting the window's.
	err := s.db.GetContext(ctx, &row, `WITH edge AS (
			SELECT coalesce((SELECT id FROM webhook_deliveries WHERE webhook_id = $1 AND id >= $3
				ORDER BY id DESC OFFSET $4 - 1 LIMIT 1), $3) AS id),
		d AS MATERIALIZED (
			SELECT status, attempts FROM webhook_deliveries
			WHERE webhook_id = $1 AND org_id = $2 AND id >= (SELECT id FROM edge)),
		a AS (
			SELECT e, e->>'outcome' AS outcome FROM d, jsonb_array_elements(d.attempts) AS e
			WHERE e->>'outcome' NOT IN ('`+OutcomeStarted+`', '`+OutcomeInterrupted+`'))
		SELECT
			(SELECT count(*) FROM d) AS deliveries,
			(SELECT count(*) FILTER (WHERE status = 'PENDING') FROM d) AS pending,
			(SELECT count(*) FILTER (WHERE status = 'SUCCEEDED') FROM d) AS succeeded,
			(SELECT count(*) FILTER (WHERE status = 'FAILED') FROM d) AS failed,
			count(*) AS attempts,
			count(*) FILTER (WHERE outcome = '`+OutcomeSuccess+`') AS attempts_ok,
			percentile_cont(0.5) WITHIN GROUP (ORDER BY (e->>'durationMs')::float8) FILTER (WHERE e ? 'statusCode') AS p50,
			percentile_cont(0.95) WITHIN GROUP (ORDER BY (e->>'durationMs')::float8) FILTER (WHERE e ? 'statusCode') AS p95,
			(SELECT e FROM a WHERE outcome <> '`+OutcomeSuccess+`' ORDER BY (e->>'at')::timestamptz DESC LIMIT 1) AS last_error
		FROM a`, webhookID, org, uuidV7Floor(from), StatsLimit)
	if err != nil {
		return st, fmt.Errorf("webhook stats: %w", err)
	}
	st.Deliveries, st.Pending, st.Succeeded, st.Failed = row.Deliveries, row.Pending, row.Succeeded, row.Failed
	st.Attempts, st.AttemptsOK, st.P50Ms, st.P95Ms = row.Attempts, row.AttemptsOK, row.P50, row.P95
	st.Sampled = row.Deliveries >= StatsLimit
	if len(row.LastError) > 0 {
		var a Attempt
		if err := json.Unmarshal(row.LastError, &a); err != nil {
			return st, fmt.Errorf("webhook stats: last error: %w", err)
		}
		st.LastError = &a
	}
	return st, nil
}
