package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// The delivery queue. A PENDING row without a holder is due at
// next_attempt_at. Claiming it (InsertDeliveries for a new row, ClaimDue for
// a due one) sets holder to the claiming process, bumps claim, and starts
// the next attempt in the same statement: attempt_count is incremented and
// the attempt is appended to the log as "started", so the number is used
// before any request carries it. The recorder then completes the attempt
// (Complete) or, when no request was made, takes it back (a hand-back).
//
// A holder keeps its claims with one lease row that it renews (RenewLease);
// when the row has been expired for a lease period while another replica
// was live, that replica's next renewal hands the holder's deliveries back
// to the queue and marks their started attempts interrupted. The claim counter tells a late completion of a claim that
// was taken over from the current one: its attempt is logged, the state is
// left alone.

// NewDelivery is a delivery to insert.
type NewDelivery struct {
	ID        uuid.UUID
	WebhookID uuid.UUID
	OrgID     string
	EventID   string
	Event     string
	Body      []byte
	// TraceParent is the W3C traceparent of the event ("" for none): each
	// attempt's span is its child.
	TraceParent string
}

// Job is a claimed delivery, ready to send.
type Job struct {
	DeliveryID uuid.UUID `db:"id"`
	WebhookID  uuid.UUID `db:"webhook_id"`
	OrgID      string    `db:"org_id"`
	EventID    string    `db:"event_id"`
	Event      string    `db:"event"`
	Body       []byte    `db:"body"`
	// TraceParent of the event (NewDelivery.TraceParent).
	TraceParent string `db:"traceparent"`
	// Attempt is the number of the attempt the claim started: the
	// X-Webhook-Attempt of its request.
	Attempt int `db:"attempt"`
	// Interrupted counts the earlier attempts that were never completed:
	// they do not count toward the retry budget.
	Interrupted int `db:"interrupted"`
	Claim       int `db:"claim"`
	// ClaimedAt is when the claim was asked for, by this process's clock.
	ClaimedAt time.Time `db:"-"`
}

// startedAttempt is the log entry of an attempt being made, numbered n.
func startedAttempt(n string) string {
	return `jsonb_build_object('number', ` + n + `, 'at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
		'durationMs', 0, 'outcome', '` + OutcomeStarted + `', 'responseExcerpt', '')`
}

// liveLease selects the holder when its lease is live: claims are only
// made under a live lease, so that no claim can be left behind by a lease
// that already ran out.
const liveLease = `SELECT holder FROM webhook_leases WHERE holder = $1 AND expires_at > now()`

const jobColumns = `d.id, d.webhook_id, d.org_id, d.event_id, d.event, d.body, d.traceparent, d.attempt_count AS attempt, d.claim`

// InsertDeliveries inserts the deliveries that do not exist yet and returns
// those it claimed for holder as jobs, their first attempt started, tagged
// with batch (see RenewLease). Rows for
// webhooks that are gone or no longer ACTIVE are skipped. When holder's
// lease is not live the rows are inserted unclaimed and due now, for any
// replica's poller, and no job is returned.
func (s *Store) InsertDeliveries(ctx context.Context, holder, batch uuid.UUID, rows []NewDelivery) ([]Job, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	n := len(rows)
	ids, hooks := make([]string, n), make([]string, n)
	orgs, events, names := make([]string, n), make([]string, n), make([]string, n)
	bodies := make([][]byte, n)
	traceparents := make([]string, n)
	for i, r := range rows {
		ids[i], hooks[i], orgs[i], events[i], names[i], bodies[i] = r.ID.String(), r.WebhookID.String(), r.OrgID, r.EventID, r.Event, r.Body
		traceparents[i] = r.TraceParent
	}
	start := time.Now()
	var out []struct {
		Job
		Held bool `db:"held"`
	}
	// The webhooks are locked FOR SHARE (in id order, as Complete and
	// UpdateWebhook lock them, so no deadlock): a webhook being turned
	// FAILED or INACTIVE at this moment is then either seen as changed and
	// skipped, or changed after this commits, when stopping its pending
	// deliveries sees these rows. A plain check would read the old status
	// and leave new rows PENDING on a disabled webhook.
	err := s.db.SelectContext(ctx, &out, `WITH me AS (`+liveLease+`),
		hooks AS (
		SELECT w.id FROM webhooks w WHERE w.id = ANY($3::uuid[]) AND w.status = 'ACTIVE' ORDER BY w.id FOR SHARE),
		ins AS (
		INSERT INTO webhook_deliveries AS d (id, webhook_id, org_id, event_id, event, body, traceparent, status, holder, next_attempt_at,
			claim, attempt_count, attempts, created_at, updated_at, claim_batch)
		SELECT v.id, v.webhook_id, v.org_id, v.event_id, v.event, v.body, v.traceparent, 'PENDING', me.holder,
			CASE WHEN me.holder IS NULL THEN now() END,
			CASE WHEN me.holder IS NULL THEN 0 ELSE 1 END,
			CASE WHEN me.holder IS NULL THEN 0 ELSE 1 END,
			CASE WHEN me.holder IS NULL THEN '[]'::jsonb ELSE jsonb_build_array(`+startedAttempt("1")+`) END,
			now(), now(), CASE WHEN me.holder IS NOT NULL THEN $8::uuid END
		FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::bytea[], $9::text[]) AS v(id, webhook_id, org_id, event_id, event, body, traceparent)
		LEFT JOIN me ON true
		WHERE v.webhook_id IN (SELECT id FROM hooks)
		ON CONFLICT (event_id, webhook_id) WHERE recovery_id IS NULL DO NOTHING
		RETURNING `+jobColumns+`, 0 AS interrupted, d.holder IS NOT NULL AS held)
		SELECT * FROM ins`,
		holder, pq.Array(ids), pq.Array(hooks), pq.Array(orgs), pq.Array(events), pq.Array(names), pq.ByteaArray(bodies), batch, pq.Array(traceparents))
	if err != nil {
		return nil, fmt.Errorf("insert deliveries: %w", err)
	}
	jobs := make([]Job, 0, len(out))
	for _, r := range out {
		if r.Held {
			r.ClaimedAt = start
			jobs = append(jobs, r.Job)
		}
	}
	return jobs, nil
}

// ClaimDue claims for holder up to limit due deliveries of ACTIVE webhooks,
// oldest due first, and starts their next attempt; the rows are tagged with
// batch (see RenewLease). It claims nothing while holder's lease is not
// live.
func (s *Store) ClaimDue(ctx context.Context, holder, batch uuid.UUID, limit int) ([]Job, error) {
	start := time.Now()
	var jobs []Job
	err := s.db.SelectContext(ctx, &jobs, `WITH me AS (`+liveLease+`)
		UPDATE webhook_deliveries d
		SET holder = $1, claim_batch = $3, next_attempt_at = NULL, claim = d.claim + 1, attempt_count = d.attempt_count + 1,
			attempts = d.attempts || `+startedAttempt("d.attempt_count + 1")+`, updated_at = now()
		FROM (SELECT dd.id FROM webhook_deliveries dd JOIN webhooks w ON w.id = dd.webhook_id
		      WHERE dd.status = 'PENDING' AND dd.holder IS NULL AND dd.next_attempt_at <= now() AND w.status = 'ACTIVE'
		        AND EXISTS (SELECT 1 FROM me)
		      ORDER BY dd.next_attempt_at LIMIT $2
		      FOR UPDATE OF dd SKIP LOCKED) due
		WHERE d.id = due.id
		RETURNING `+jobColumns+`,
			(SELECT count(*) FROM jsonb_array_elements(d.attempts) e WHERE e->>'outcome' = '`+OutcomeInterrupted+`')::int AS interrupted`,
		holder, limit, batch)
	if err != nil {
		return nil, fmt.Errorf("claim due deliveries: %w", err)
	}
	for i := range jobs {
		jobs[i].ClaimedAt = start
	}
	return jobs, nil
}

// interruptedError is the error of an attempt whose dispatcher died.
const interruptedError = "no answer recorded: the dispatcher making this attempt stopped; the receiver may have seen it"

// Renewal is what a lease renewal found.
type Renewal struct {
	// Lapsed reports that the lease had run out before this renewal (or
	// did not exist yet).
	Lapsed bool
	// Losses counts the times another replica took this holder's
	// deliveries over: when it changed since the last renewal, deliveries
	// claimed before may be another replica's now. A lease that lapsed
	// without a takeover keeps its deliveries.
	Losses int
	// TakenOver counts the deliveries of dead holders that this renewal
	// handed back to the queue.
	TakenOver int
}

// RenewLease extends holder's lease to ttl from now and, in the same
// statement, hands the deliveries of dead holders back to the queue (due
// now, their started attempt marked interrupted). A holder is dead once its
// lease has been expired for ttl while holder's own lease was live without
// a break, both by the database's clock: after an outage that every
// replica shared, each gets a lease period to renew (and so keep its
// deliveries, whose answers it may still have to write) before any takes
// another's over. The rows holder claimed in the batches unsure (claim
// statements whose outcome holder never learnt) are handed back, due now,
// their started attempt taken back. Lease rows that ran out long ago and
// hold nothing are deleted.
func (s *Store) RenewLease(ctx context.Context, holder uuid.UUID, ttl time.Duration, unsure []uuid.UUID) (Renewal, error) {
	var r struct {
		Lapsed    bool `db:"lapsed"`
		Losses    int  `db:"losses"`
		TakenOver int  `db:"taken_over"`
	}
	// The upsert sees the latest version of holder's row (a takeover that
	// committed meanwhile included); live_since restarts when the lease had
	// run out, and only a fresh start equals now(), the transaction's time.
	// The dead holders' rows are locked before their deliveries are taken:
	// a holder renewing at this moment is skipped (SKIP LOCKED), one that
	// renewed since this statement began is re-checked and no longer dead,
	// and a renewal of the holder after this one commits sees its losses
	// counted. SKIP LOCKED on the deliveries lets renewals of several
	// replicas share a dead holder's rows without waiting for (or
	// deadlocking on) each other; a row skipped now is taken at the next
	// renewal.
	err := s.db.GetContext(ctx, &r, `WITH me AS (
			INSERT INTO webhook_leases AS l (holder, expires_at, live_since) VALUES ($1, now() + $2 * interval '1 millisecond', now())
			ON CONFLICT (holder) DO UPDATE SET expires_at = EXCLUDED.expires_at,
				live_since = CASE WHEN l.expires_at > now() THEN l.live_since ELSE now() END
			RETURNING live_since, losses),
		dead AS (
			SELECT l.holder FROM webhook_leases l, me
			WHERE l.holder <> $1 AND GREATEST(l.expires_at, me.live_since) <= now() - $2 * interval '1 millisecond'
				AND EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.holder = l.holder)
			FOR UPDATE OF l SKIP LOCKED),
		orphaned AS (
			SELECT d.id, d.holder FROM webhook_deliveries d JOIN dead ON dead.holder = d.holder
			FOR UPDATE OF d SKIP LOCKED),
		taken AS (
			UPDATE webhook_deliveries d SET holder = NULL,
				attempts = CASE WHEN d.attempts->-1->>'outcome' = '`+OutcomeStarted+`'
					THEN jsonb_set(d.attempts, '{-1}', (d.attempts->-1) || jsonb_build_object('outcome', '`+OutcomeInterrupted+`', 'error', $3::text))
					ELSE d.attempts END,
				next_attempt_at = CASE WHEN d.status = 'PENDING' THEN now() ELSE d.next_attempt_at END,
				updated_at = now()
			FROM orphaned WHERE d.id = orphaned.id
			RETURNING orphaned.holder),
		unknown AS (
			UPDATE webhook_deliveries d SET holder = NULL,
				attempt_count = CASE WHEN `+ownAttempt+` THEN d.attempt_count - 1 ELSE d.attempt_count END,
				attempts = CASE WHEN `+ownAttempt+` THEN d.attempts - (-1) ELSE d.attempts END,
				next_attempt_at = CASE WHEN d.status = 'PENDING' THEN now() ELSE d.next_attempt_at END,
				updated_at = now()
			WHERE d.holder = $1 AND d.claim_batch = ANY($4::uuid[])),
		lost AS (
			UPDATE webhook_leases l SET losses = l.losses + 1 WHERE l.holder IN (SELECT holder FROM taken)),
		gone AS (
			DELETE FROM webhook_leases l WHERE l.expires_at < now() - interval '10 minutes' AND l.holder <> $1
				AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.holder = l.holder))
		SELECT me.live_since = now() AS lapsed, me.losses, (SELECT count(*) FROM taken) AS taken_over FROM me`,
		holder, ttl.Milliseconds(), interruptedError, pq.Array(unsure))
	if err != nil {
		return Renewal{}, fmt.Errorf("renew lease: %w", err)
	}
	return Renewal{Lapsed: r.Lapsed, Losses: r.Losses, TakenOver: r.TakenOver}, nil
}

// EndLease ends holder's lease now: whatever it still holds is taken over
// at the next renewal of another replica.
func (s *Store) EndLease(ctx context.Context, holder uuid.UUID) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE webhook_leases SET expires_at = now() WHERE holder = $1`, holder); err != nil {
		return fmt.Errorf("end lease: %w", err)
	}
	return nil
}

// ReleaseClaims hands claimed jobs that were never sent back to the queue,
// due after delay: the attempt each claim started is taken back, so its
// number is used by the next claim. A job whose claim was taken over since
// is left alone.
func (s *Store) ReleaseClaims(ctx context.Context, jobs []Job, delay time.Duration) error {
	if len(jobs) == 0 {
		return nil
	}
	results := make([]Result, len(jobs))
	for i, j := range jobs {
		results[i] = Result{Job: j, Unsent: true, RetryIn: delay}
	}
	return release(ctx, s.db, results)
}

// ownAttempt holds while the last attempt is the one the current claim
// started: numbered attempt_count, started (or interrupted if the lease ran
// out meanwhile).
const ownAttempt = `d.attempts->-1->>'number' = d.attempt_count::text AND d.attempts->-1->>'outcome' IN ('` + OutcomeStarted + `', '` + OutcomeInterrupted + `')`

func release(ctx context.Context, q sqlx.ExecerContext, results []Result) error {
	ids, claims, delays := make([]string, len(results)), make([]int64, len(results)), make([]int64, len(results))
	for i, r := range results {
		ids[i], claims[i], delays[i] = r.Job.DeliveryID.String(), int64(r.Job.Claim), r.RetryIn.Milliseconds()
	}
	_, err := q.ExecContext(ctx, `UPDATE webhook_deliveries d SET
			holder = NULL,
			attempt_count = CASE WHEN `+ownAttempt+` THEN d.attempt_count - 1 ELSE d.attempt_count END,
			attempts = CASE WHEN `+ownAttempt+` THEN d.attempts - (-1) ELSE d.attempts END,
			next_attempt_at = CASE WHEN d.status = 'PENDING' THEN now() + v.delay_ms * interval '1 millisecond' ELSE d.next_attempt_at END,
			updated_at = now()
		FROM unnest($1::uuid[], $2::int[], $3::bigint[]) AS v(id, claim, delay_ms)
		WHERE d.id = v.id AND d.claim = v.claim`, pq.Array(ids), pq.Array(claims), pq.Array(delays))
	if err != nil {
		return fmt.Errorf("hand back unsent deliveries: %w", err)
	}
	return nil
}

// Result is what became of one claimed job: an automatic attempt's
// outcome, or, with Unsent, a job handed back without a request.
type Result struct {
	Job     Job
	Attempt Attempt
	// Status is the delivery's status after the attempt: SUCCEEDED, PENDING
	// (retry after RetryIn) or FAILED.
	Status  string
	RetryIn time.Duration
	// NotCounted leaves the webhook's failureCount alone: the attempt
	// failed on our side (an unreadable secret), not at the endpoint.
	NotCounted bool
	// Unsent hands the job back (see ReleaseClaims), due after RetryIn;
	// Attempt and Status are not used.
	Unsent bool
}

// Disabled is a webhook that a batch of results turned FAILED.
type Disabled struct {
	ID           uuid.UUID `db:"id"`
	OrgID        string    `db:"org_id"`
	FailureCount int       `db:"failure_count"`
}

// recordAttemptsSQL records attempts ($1 delivery ids, $2 their claims, $3
// statuses, $4 retry delays in ms, $5 attempts): each replaces the entry of
// the same number, which its claim started (usually the last one; an
// earlier one when the claim was taken over and the next attempt started
// meanwhile).
const recordAttemptsSQL = `UPDATE webhook_deliveries d SET
			attempts = CASE WHEN d.attempts->-1->>'number' = v.attempt->>'number' THEN jsonb_set(d.attempts, '{-1}', v.attempt)
				ELSE (SELECT CASE WHEN bool_or(e->>'number' = v.attempt->>'number')
						THEN jsonb_agg(CASE WHEN e->>'number' = v.attempt->>'number' THEN v.attempt ELSE e END ORDER BY i)
						ELSE d.attempts || v.attempt END
					FROM jsonb_array_elements(d.attempts) WITH ORDINALITY AS x(e, i)) END,
			status = CASE WHEN d.claim = v.claim THEN v.status ELSE d.status END,
			holder = CASE WHEN d.claim = v.claim THEN NULL ELSE d.holder END,
			next_attempt_at = CASE WHEN d.claim <> v.claim THEN d.next_attempt_at
			                       WHEN v.status = 'PENDING' THEN now() + v.retry_ms * interval '1 millisecond' END,
			updated_at = now()
			FROM unnest($1::uuid[], $2::int[], $3::text[], $4::bigint[], $5::jsonb[]) AS v(id, claim, status, retry_ms, attempt)
			WHERE d.id = v.id`

// recordSuccessesSQL is Complete for a batch of successes only, in one
// statement (its own transaction: no BEGIN and COMMIT round trips): the
// attempts as recordAttemptsSQL, and the failure counts of their ACTIVE
// webhooks ($6) reset, locked in id order as Complete locks them. Nothing
// else can follow from successes: no webhook reaches the threshold, no
// delivery is retried.
const recordSuccessesSQL = `WITH recorded AS (` + recordAttemptsSQL + `),
	locked AS (
		SELECT w.id FROM webhooks w WHERE w.id = ANY($6::uuid[]) AND w.status = 'ACTIVE' AND w.failure_count > 0
		ORDER BY w.id FOR UPDATE)
	UPDATE webhooks w SET failure_count = 0, updated_at = now() FROM locked WHERE w.id = locked.id`

// Complete records a batch of results in one transaction: the attempts
// (each replacing the entry its claim started) and the new delivery states,
// the webhooks' failure counts (reset by a success, FAILED at threshold),
// the hand-backs of unsent jobs, and stops the pending deliveries of
// webhooks that are no longer ACTIVE. It returns the webhooks it disabled.
func (s *Store) Complete(ctx context.Context, results []Result, threshold int) ([]Disabled, error) {
	if len(results) == 0 {
		return nil, nil
	}
	var sent, unsent []Result
	for _, r := range results {
		if r.Unsent {
			unsent = append(unsent, r)
		} else {
			sent = append(sent, r)
		}
	}
	n := len(sent)
	ids, claims, statuses := make([]string, n), make([]int64, n), make([]string, n)
	retries, attempts := make([]int64, n), make([]string, n)
	type count struct {
		reset bool
		inc   int
	}
	counts := map[uuid.UUID]*count{}
	var order []uuid.UUID
	var retrying []uuid.UUID
	succeeded := 0
	for i, r := range sent {
		a, err := json.Marshal(r.Attempt)
		if err != nil {
			return nil, fmt.Errorf("encode attempt: %w", err)
		}
		ids[i], claims[i], statuses[i], retries[i], attempts[i] = r.Job.DeliveryID.String(), int64(r.Job.Claim), r.Status, r.RetryIn.Milliseconds(), string(a)
		if r.NotCounted {
			continue
		}
		c, ok := counts[r.Job.WebhookID]
		if !ok {
			c = &count{}
			counts[r.Job.WebhookID] = c
			order = append(order, r.Job.WebhookID)
		}
		if r.Status == DeliverySucceeded {
			c.reset, c.inc = true, 0
			succeeded++
		} else {
			c.inc++
		}
		if r.Status == DeliveryPending {
			retrying = append(retrying, r.Job.WebhookID)
		}
	}
	// A stable order of row locks keeps concurrent batches of replicas from
	// deadlocking on the same webhooks.
	slices.SortFunc(order, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	hookIDs, resets, incs := make([]string, len(order)), make([]bool, len(order)), make([]int64, len(order))
	for i, id := range order {
		hookIDs[i], resets[i], incs[i] = id.String(), counts[id].reset, int64(counts[id].inc)
	}

	if len(unsent) == 0 && succeeded == n {
		// The usual batch at a steady rate, whose transaction overhead
		// (three more round trips, a plan) cost as much as its rows.
		if _, err := s.db.ExecContext(ctx, recordSuccessesSQL,
			pq.Array(ids), pq.Array(claims), pq.Array(statuses), pq.Array(retries), pq.Array(attempts), pq.Array(hookIDs)); err != nil {
			return nil, fmt.Errorf("record attempts: %w", err)
		}
		return nil, nil
	}
	var disabled []Disabled
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if len(unsent) > 0 {
			if err := release(ctx, tx, unsent); err != nil {
				return err
			}
		}
		if n == 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, recordAttemptsSQL,
			pq.Array(ids), pq.Array(claims), pq.Array(statuses), pq.Array(retries), pq.Array(attempts)); err != nil {
			return fmt.Errorf("record attempts: %w", err)
		}
		// Up to PerWebhook attempts of one webhook are in flight at once, so
		// one batch can hold several failures of a webhook about to reach the
		// threshold: the count stops there (the documented "FAILED at 3"),
		// and only ACTIVE webhooks are counted, so that attempts finishing
		// after the webhook turned FAILED add nothing.
		var touched []Disabled
		if err := tx.SelectContext(ctx, &touched, `WITH v AS (
				SELECT * FROM unnest($1::uuid[], $2::bool[], $3::int[]) AS v(id, reset, inc)),
			locked AS (
				SELECT w.id FROM webhooks w JOIN v ON v.id = w.id
				WHERE w.status = 'ACTIVE' AND (v.inc > 0 OR w.failure_count > 0)
				ORDER BY w.id FOR UPDATE OF w)
			UPDATE webhooks w SET
				failure_count = LEAST(CASE WHEN v.reset THEN v.inc ELSE w.failure_count + v.inc END, $4),
				status = CASE WHEN (CASE WHEN v.reset THEN v.inc ELSE w.failure_count + v.inc END) >= $4 THEN 'FAILED' ELSE w.status END,
				updated_at = now()
			FROM v, locked WHERE w.id = v.id AND w.id = locked.id AND w.status = 'ACTIVE'
			RETURNING w.id, w.org_id, w.failure_count`,
			pq.Array(hookIDs), pq.Array(resets), pq.Array(incs), threshold); err != nil {
			return fmt.Errorf("update failure counts: %w", err)
		}
		stop := slices.Clone(retrying)
		for _, t := range touched {
			if t.FailureCount >= threshold {
				disabled = append(disabled, t)
				stop = append(stop, t.ID)
			}
		}
		return stopPending(ctx, tx, stop)
	})
	if err != nil {
		return nil, err
	}
	return disabled, nil
}
