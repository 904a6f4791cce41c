// Package store is the dispatcher's PostgreSQL access: webhooks, and
// deliveries, whose pending rows double as the durable retry queue.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// Webhook statuses.
const (
	StatusActive   = "ACTIVE"
	StatusInactive = "INACTIVE"
	StatusFailed   = "FAILED"
)

// Delivery statuses.
const (
	DeliveryPending   = "PENDING"
	DeliverySucceeded = "SUCCEEDED"
	DeliveryFailed    = "FAILED"
)

// ErrNotFound is returned for a missing row, or one of another organization.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a row is not in a state the change needs.
var ErrConflict = errors.New("conflict")

// Webhook is a row of webhooks.
type Webhook struct {
	ID               uuid.UUID      `db:"id"`
	OrgID            string         `db:"org_id"`
	URL              string         `db:"url"`
	Events           pq.StringArray `db:"events"`
	Description      string         `db:"description"`
	SecretCiphertext []byte         `db:"secret_ciphertext"`
	SecretKeyID      string         `db:"secret_key_id"`
	SecretHint       string         `db:"secret_hint"`
	Status           string         `db:"status"`
	FailureCount     int            `db:"failure_count"`
	CreatedAt        time.Time      `db:"created_at"`
	UpdatedAt        time.Time      `db:"updated_at"`
}

// Attempt is one recorded attempt of a delivery.
type Attempt struct {
	Number          int       `json:"number"`
	At              time.Time `json:"at"`
	DurationMs      int64     `json:"durationMs"`
	StatusCode      int       `json:"statusCode,omitempty"`
	Error           string    `json:"error,omitempty"`
	ResponseExcerpt string    `json:"responseExcerpt"`
	Manual          bool      `json:"manual,omitempty"`
}

// Delivery is a row of webhook_deliveries.
type Delivery struct {
	ID            uuid.UUID       `db:"id"`
	WebhookID     uuid.UUID       `db:"webhook_id"`
	OrgID         string          `db:"org_id"`
	EventID       string          `db:"event_id"`
	Event         string          `db:"event"`
	Body          []byte          `db:"body"`
	Status        string          `db:"status"`
	AttemptCount  int             `db:"attempt_count"`
	Attempts      json.RawMessage `db:"attempts"`
	NextAttemptAt sql.NullTime    `db:"next_attempt_at"`
	Claim         int             `db:"claim"`
	CreatedAt     time.Time       `db:"created_at"`
	UpdatedAt     time.Time       `db:"updated_at"`
}

// Job is a claimed delivery, ready to send.
type Job struct {
	DeliveryID uuid.UUID `db:"id"`
	WebhookID  uuid.UUID `db:"webhook_id"`
	OrgID      string    `db:"org_id"`
	EventID    string    `db:"event_id"`
	Event      string    `db:"event"`
	Body       []byte    `db:"body"`
	Attempt    int       `db:"attempt"` // number of the attempt about to be made
	Claim      int       `db:"claim"`
	// LeaseUntil is when the claim runs out, by this process's clock.
	LeaseUntil time.Time `db:"-"`
}

// Store wraps the database.
type Store struct{ db *sqlx.DB }

// New returns a store on db.
func New(db *sqlx.DB) *Store { return &Store{db: db} }

// Now is the current time at the precision PostgreSQL keeps (microseconds),
// so that an answer built from a row just written shows exactly what a later
// read of that row shows.
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

const webhookColumns = `id, org_id, url, events, description, secret_ciphertext, secret_key_id, secret_hint, status, failure_count, created_at, updated_at`

// LimitError says that an organization holds as many webhooks as allowed.
type LimitError struct{ Max int }

func (e *LimitError) Error() string {
	return fmt.Sprintf("the organization has %d webhooks, the most allowed", e.Max)
}

// CreateWebhook inserts w unless its organization already has max webhooks
// (a *LimitError). The count and the insert run under a transaction lock
// on the organization, so that concurrent creates cannot pass the limit
// together.
func (s *Store) CreateWebhook(ctx context.Context, w Webhook, max int) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('webhooks/' || $1, 0))`, w.OrgID); err != nil {
			return fmt.Errorf("lock organization: %w", err)
		}
		var n int
		if err := tx.GetContext(ctx, &n, `SELECT count(*) FROM webhooks WHERE org_id = $1`, w.OrgID); err != nil {
			return fmt.Errorf("count webhooks: %w", err)
		}
		if n >= max {
			return &LimitError{Max: max}
		}
		if _, err := tx.NamedExecContext(ctx, `INSERT INTO webhooks (`+webhookColumns+`)
			VALUES (:id, :org_id, :url, :events, :description, :secret_ciphertext, :secret_key_id, :secret_hint, :status, :failure_count, :created_at, :updated_at)`, w); err != nil {
			return fmt.Errorf("insert webhook: %w", err)
		}
		return nil
	})
}

// ListWebhooks returns up to limit webhooks of org, newest first, after the
// cursor id when given.
func (s *Store) ListWebhooks(ctx context.Context, org string, limit int, after *uuid.UUID) ([]Webhook, error) {
	var out []Webhook
	var err error
	if after == nil {
		err = s.db.SelectContext(ctx, &out, `SELECT `+webhookColumns+` FROM webhooks WHERE org_id = $1 ORDER BY id DESC LIMIT $2`, org, limit)
	} else {
		err = s.db.SelectContext(ctx, &out, `SELECT `+webhookColumns+` FROM webhooks WHERE org_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3`, org, *after, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	return out, nil
}

// GetWebhook returns one webhook of org.
func (s *Store) GetWebhook(ctx context.Context, org string, id uuid.UUID) (Webhook, error) {
	var w Webhook
	err := s.db.GetContext(ctx, &w, `SELECT `+webhookColumns+` FROM webhooks WHERE id = $1 AND org_id = $2`, id, org)
	if errors.Is(err, sql.ErrNoRows) {
		return w, ErrNotFound
	}
	if err != nil {
		return w, fmt.Errorf("get webhook: %w", err)
	}
	return w, nil
}

// ActiveWebhooks returns the ACTIVE webhooks of org.
func (s *Store) ActiveWebhooks(ctx context.Context, org string) ([]Webhook, error) {
	var out []Webhook
	if err := s.db.SelectContext(ctx, &out, `SELECT `+webhookColumns+` FROM webhooks WHERE org_id = $1 AND status = 'ACTIVE'`, org); err != nil {
		return nil, fmt.Errorf("active webhooks: %w", err)
	}
	return out, nil
}

// UpdateWebhook applies change to a webhook of org under a row lock. When
// the webhook leaves ACTIVE its pending deliveries stop (they become FAILED
// and can be retried by hand).
func (s *Store) UpdateWebhook(ctx context.Context, org string, id uuid.UUID, change func(*Webhook) error) (Webhook, error) {
	var w Webhook
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		err := tx.GetContext(ctx, &w, `SELECT `+webhookColumns+` FROM webhooks WHERE id = $1 AND org_id = $2 FOR UPDATE`, id, org)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("lock webhook: %w", err)
		}
		if err := change(&w); err != nil {
			return err
		}
		w.UpdatedAt = Now()
		if _, err := tx.NamedExecContext(ctx, `UPDATE webhooks SET url = :url, events = :events, description = :description,
			secret_ciphertext = :secret_ciphertext, secret_key_id = :secret_key_id, secret_hint = :secret_hint,
			status = :status, failure_count = :failure_count, updated_at = :updated_at WHERE id = :id`, w); err != nil {
			return fmt.Errorf("update webhook: %w", err)
		}
		if w.Status != StatusActive {
			return stopPending(ctx, tx, []uuid.UUID{w.ID})
		}
		return nil
	})
	return w, err
}

// DeleteWebhook deletes a webhook of org and its delivery log.
func (s *Store) DeleteWebhook(ctx context.Context, org string, id uuid.UUID) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM webhooks WHERE id = $1 AND org_id = $2`, id, org)
	if err != nil {
		return fmt.Errorf("delete webhook: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// NewDelivery is a delivery to insert.
type NewDelivery struct {
	ID        uuid.UUID
	WebhookID uuid.UUID
	OrgID     string
	EventID   string
	Event     string
	Body      []byte
}

const jobColumns = `d.id, d.webhook_id, d.org_id, d.event_id, d.event, d.body, d.attempt_count + 1 AS attempt, d.claim`

// InsertDeliveries inserts the deliveries that do not exist yet, claimed by
// the caller for lease, and returns them as jobs. Rows for webhooks that are
// gone or no longer ACTIVE are skipped.
func (s *Store) InsertDeliveries(ctx context.Context, rows []NewDelivery, lease time.Duration) ([]Job, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	n := len(rows)
	ids, hooks := make([]string, n), make([]string, n)
	orgs, events, names := make([]string, n), make([]string, n), make([]string, n)
	bodies := make([][]byte, n)
	for i, r := range rows {
		ids[i], hooks[i], orgs[i], events[i], names[i], bodies[i] = r.ID.String(), r.WebhookID.String(), r.OrgID, r.EventID, r.Event, r.Body
	}
	start := time.Now()
	var jobs []Job
	// The webhooks are locked FOR SHARE (in id order, as Complete and
	// UpdateWebhook lock them, so no deadlock): a webhook being turned
	// FAILED or INACTIVE at this moment is then either seen as changed and
	// skipped, or changed after this commits, when stopping its pending
	// deliveries sees these rows. A plain check would read the old status
	// and leave new rows PENDING on a disabled webhook.
	err := s.db.SelectContext(ctx, &jobs, `WITH hooks AS (
		SELECT w.id FROM webhooks w WHERE w.id = ANY($2::uuid[]) AND w.status = 'ACTIVE' ORDER BY w.id FOR SHARE),
		ins AS (
		INSERT INTO webhook_deliveries AS d (id, webhook_id, org_id, event_id, event, body, status, next_attempt_at, claim, created_at, updated_at)
		SELECT v.id, v.webhook_id, v.org_id, v.event_id, v.event, v.body, 'PENDING', now() + $7 * interval '1 millisecond', 1, now(), now()
		FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::bytea[]) AS v(id, webhook_id, org_id, event_id, event, body)
		WHERE v.webhook_id IN (SELECT id FROM hooks)
		ON CONFLICT (event_id, webhook_id) DO NOTHING
		RETURNING `+jobColumns+`)
		SELECT * FROM ins`,
		pq.Array(ids), pq.Array(hooks), pq.Array(orgs), pq.Array(events), pq.Array(names), pq.ByteaArray(bodies), lease.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("insert deliveries: %w", err)
	}
	setLease(jobs, start.Add(lease))
	return jobs, nil
}

// ClaimDue claims up to limit due deliveries of ACTIVE webhooks for lease.
func (s *Store) ClaimDue(ctx context.Context, limit int, lease time.Duration) ([]Job, error) {
	start := time.Now()
	var jobs []Job
	err := s.db.SelectContext(ctx, &jobs, `UPDATE webhook_deliveries d
		SET next_attempt_at = now() + $2 * interval '1 millisecond', claim = d.claim + 1, updated_at = now()
		FROM (SELECT dd.id FROM webhook_deliveries dd JOIN webhooks w ON w.id = dd.webhook_id
		      WHERE dd.status = 'PENDING' AND dd.next_attempt_at <= now() AND w.status = 'ACTIVE'
		      ORDER BY dd.next_attempt_at LIMIT $1
		      FOR UPDATE OF dd SKIP LOCKED) due
		WHERE d.id = due.id
		RETURNING `+jobColumns, limit, lease.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("claim due deliveries: %w", err)
	}
	setLease(jobs, start.Add(lease))
	return jobs, nil
}

func setLease(jobs []Job, until time.Time) {
	for i := range jobs {
		jobs[i].LeaseUntil = until
	}
}

// ReleaseClaims makes claimed but unsent jobs due now, so that a restart
// (or another replica) takes them without waiting for the lease.
func (s *Store) ReleaseClaims(ctx context.Context, jobs []Job) error {
	if len(jobs) == 0 {
		return nil
	}
	ids, claims := make([]string, len(jobs)), make([]int64, len(jobs))
	for i, j := range jobs {
		ids[i], claims[i] = j.DeliveryID.String(), int64(j.Claim)
	}
	_, err := s.db.ExecContext(ctx, `UPDATE webhook_deliveries d SET next_attempt_at = now()
		FROM unnest($1::uuid[], $2::int[]) AS v(id, claim)
		WHERE d.id = v.id AND d.claim = v.claim AND d.status = 'PENDING'`, pq.Array(ids), pq.Array(claims))
	if err != nil {
		return fmt.Errorf("release claims: %w", err)
	}
	return nil
}

// Result is the outcome of one automatic attempt.
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
}

// Disabled is a webhook that a batch of results turned FAILED.
type Disabled struct {
	ID           uuid.UUID `db:"id"`
	OrgID        string    `db:"org_id"`
	FailureCount int       `db:"failure_count"`
}

// Complete records a batch of attempt results in one transaction: the
// attempts and the new delivery states, the webhooks' failure counts (reset
// by a success, FAILED at threshold), and stops the pending deliveries of
// webhooks that are no longer ACTIVE. It returns the webhooks it disabled.
func (s *Store) Complete(ctx context.Context, results []Result, threshold int) ([]Disabled, error) {
	if len(results) == 0 {
		return nil, nil
	}
	n := len(results)
	ids, claims, statuses := make([]string, n), make([]int64, n), make([]string, n)
	retries, attempts := make([]int64, n), make([]string, n)
	type count struct {
		reset bool
		inc   int
	}
	counts := map[uuid.UUID]*count{}
	var order []uuid.UUID
	var retrying []uuid.UUID
	for i, r := range results {
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

	var disabled []Disabled
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries d SET
			attempts = d.attempts || v.attempt,
			attempt_count = d.attempt_count + 1,
			status = CASE WHEN d.claim = v.claim THEN v.status ELSE d.status END,
			next_attempt_at = CASE WHEN d.claim <> v.claim THEN d.next_attempt_at
			                       WHEN v.status = 'PENDING' THEN now() + v.retry_ms * interval '1 millisecond' END,
			updated_at = now()
			FROM unnest($1::uuid[], $2::int[], $3::text[], $4::bigint[], $5::jsonb[]) AS v(id, claim, status, retry_ms, attempt)
			WHERE d.id = v.id`,
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

// stopPending fails the pending deliveries of those webhooks that are not
// ACTIVE.
func stopPending(ctx context.Context, tx *sqlx.Tx, hooks []uuid.UUID) error {
	if len(hooks) == 0 {
		return nil
	}
	ids := make([]string, len(hooks))
	for i, h := range hooks {
		ids[i] = h.String()
	}
	if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET status = 'FAILED', next_attempt_at = NULL, updated_at = now()
		WHERE status = 'PENDING' AND webhook_id IN (SELECT id FROM webhooks WHERE id = ANY($1::uuid[]) AND status <> 'ACTIVE')`, pq.Array(ids)); err != nil {
		return fmt.Errorf("stop pending deliveries: %w", err)
	}
	return nil
}

const deliveryColumns = `id, webhook_id, org_id, event_id, event, body, status, attempt_count, attempts, next_attempt_at, claim, created_at, updated_at`

// ListDeliveries returns up to limit deliveries of a webhook of org, newest
// first, after the cursor id when given, optionally of one status.
func (s *Store) ListDeliveries(ctx context.Context, org string, webhookID uuid.UUID, limit int, after *uuid.UUID, status string) ([]Delivery, error) {
	q := `SELECT ` + deliveryColumns + ` FROM webhook_deliveries WHERE webhook_id = $1 AND org_id = $2
		AND ($3::uuid IS NULL OR id < $3) AND ($4 = '' OR status = $4) ORDER BY id DESC LIMIT $5`
	var out []Delivery
	if err := s.db.SelectContext(ctx, &out, q, webhookID, org, after, status, limit); err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	return out, nil
}

// GetDelivery returns one delivery of a webhook of org.
func (s *Store) GetDelivery(ctx context.Context, org string, webhookID, id uuid.UUID) (Delivery, error) {
	var d Delivery
	err := s.db.GetContext(ctx, &d, `SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE id = $1 AND webhook_id = $2 AND org_id = $3`, id, webhookID, org)
	if errors.Is(err, sql.ErrNoRows) {
		return d, ErrNotFound
	}
	if err != nil {
		return d, fmt.Errorf("get delivery: %w", err)
	}
	return d, nil
}

// StartManual marks a finished delivery as being retried by hand, so that
// two manual retries do not run at once. It answers ErrConflict when the
// delivery is still pending an automatic attempt.
func (s *Store) StartManual(ctx context.Context, d Delivery) (Delivery, error) {
	var out Delivery
	err := s.db.GetContext(ctx, &out, `UPDATE webhook_deliveries SET claim = claim + 1, updated_at = now()
		WHERE id = $1 AND status <> 'PENDING' RETURNING `+deliveryColumns, d.ID)
	if errors.Is(err, sql.ErrNoRows) {
		return out, fmt.Errorf("%w: the delivery is pending an automatic attempt", ErrConflict)
	}
	if err != nil {
		return out, fmt.Errorf("start manual retry: %w", err)
	}
	return out, nil
}

// RecordManual stores a manual attempt and the delivery's new status.
func (s *Store) RecordManual(ctx context.Context, id uuid.UUID, a Attempt, status string) (Delivery, error) {
	raw, err := json.Marshal(a)
	if err != nil {
		return Delivery{}, fmt.Errorf("encode attempt: %w", err)
	}
	var out Delivery
	if err := s.db.GetContext(ctx, &out, `UPDATE webhook_deliveries SET attempts = attempts || $2::jsonb,
		attempt_count = attempt_count + 1, status = $3, updated_at = now() WHERE id = $1 RETURNING `+deliveryColumns,
		id, string(raw), status); err != nil {
		return out, fmt.Errorf("record manual attempt: %w", err)
	}
	return out, nil
}

// SecretRow is the encrypted secret of one webhook.
type SecretRow struct {
	ID         uuid.UUID `db:"id"`
	KeyID      string    `db:"secret_key_id"`
	Ciphertext []byte    `db:"secret_ciphertext"`
}

// SecretsNotUnder returns, in id order after the id after, up to limit
// webhooks whose secret is sealed with another key than keyID.
func (s *Store) SecretsNotUnder(ctx context.Context, keyID string, after uuid.UUID, limit int) ([]SecretRow, error) {
	var out []SecretRow
	if err := s.db.SelectContext(ctx, &out, `SELECT id, secret_key_id, secret_ciphertext FROM webhooks
		WHERE secret_key_id <> $1 AND id > $2 ORDER BY id LIMIT $3`, keyID, after, limit); err != nil {
		return nil, fmt.Errorf("list secrets to re-encrypt: %w", err)
	}
	return out, nil
}

// SecretSamples returns, for every key id that seals a stored secret, up to
// perKey of the secrets it seals.
func (s *Store) SecretSamples(ctx context.Context, perKey int) ([]SecretRow, error) {
	var out []SecretRow
	if err := s.db.SelectContext(ctx, &out, `SELECT id, secret_key_id, secret_ciphertext FROM (
			SELECT id, secret_key_id, secret_ciphertext, row_number() OVER (PARTITION BY secret_key_id ORDER BY id) AS n FROM webhooks
		) s WHERE n <= $1 ORDER BY secret_key_id, id`, perKey); err != nil {
		return nil, fmt.Errorf("sample secrets by key: %w", err)
	}
	return out, nil
}

// ReplaceSecret stores a re-encrypted secret if the row still holds old.
func (s *Store) ReplaceSecret(ctx context.Context, old SecretRow, keyID string, ciphertext []byte) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE webhooks SET secret_key_id = $2, secret_ciphertext = $3
		WHERE id = $1 AND secret_key_id = $4 AND secret_ciphertext = $5`, old.ID, keyID, ciphertext, old.KeyID, old.Ciphertext); err != nil {
		return fmt.Errorf("re-encrypt secret: %w", err)
	}
	return nil
}

func (s *Store) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
