// Package store is the dispatcher's PostgreSQL access: webhooks, and
// deliveries, whose pending rows double as the durable retry queue.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
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

// ConflictError is returned when a row is not in the state a change needs;
// Reason says so in words for the caller of the API.
type ConflictError struct{ Reason string }

func (e *ConflictError) Error() string { return "conflict: " + e.Reason }

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
	// The secret a rotation replaced, while it still signs (until
	// PreviousUntil; see Rotate).
	PreviousCiphertext []byte         `db:"previous_secret_ciphertext"`
	PreviousKeyID      sql.NullString `db:"previous_secret_key_id"`
	PreviousUntil      sql.NullTime   `db:"previous_secret_until"`
	Status             string         `db:"status"`
	FailureCount       int            `db:"failure_count"`
	CreatedAt          time.Time      `db:"created_at"`
	UpdatedAt          time.Time      `db:"updated_at"`
}

// Attempt is one recorded attempt of a delivery.
type Attempt struct {
	Number          int       `json:"number"`
	At              time.Time `json:"at"`
	DurationMs      int64     `json:"durationMs"`
	Outcome         string    `json:"outcome"` // one of the Outcome constants
	StatusCode      int       `json:"statusCode,omitempty"`
	Error           string    `json:"error,omitempty"`
	ResponseExcerpt string    `json:"responseExcerpt"`
	Manual          bool      `json:"manual,omitempty"`
}

// Outcomes of an attempt in the delivery log. An automatic attempt is
// logged as started when its delivery is claimed, before the request goes
// out, and gets its outcome when the answer is recorded; an attempt whose
// dispatcher died before that stays interrupted: the receiver may or may not
// have seen it.
const (
	OutcomeStarted      = "started"
	OutcomeInterrupted  = "interrupted"
	OutcomeSuccess      = "success"
	OutcomeHTTPError    = "http_error"
	OutcomeTimeout      = "timeout"
	OutcomeRefused      = "refused"
	OutcomeNetworkError = "network_error"
	OutcomeRedirect     = "redirect"
	OutcomeCancelled    = "cancelled"
	OutcomeNotSent      = "not_sent" // failed on our side before any request (an unreadable secret)
)

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
	RecoveryID    uuid.NullUUID   `db:"recovery_id"`
	CreatedAt     time.Time       `db:"created_at"`
	UpdatedAt     time.Time       `db:"updated_at"`
}

// Store wraps the database.
type Store struct{ db *sqlx.DB }

// New returns a store on db.
func New(db *sqlx.DB) *Store { return &Store{db: db} }

// Now is the current time at the precision PostgreSQL keeps (microseconds),
// so that an answer built from a row just written shows exactly what a later
// read of that row shows.
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

const webhookColumns = `id, org_id, url, events, description, secret_ciphertext, secret_key_id, secret_hint,
	previous_secret_ciphertext, previous_secret_key_id, previous_secret_until, status, failure_count, created_at, updated_at`

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
			VALUES (:id, :org_id, :url, :events, :description, :secret_ciphertext, :secret_key_id, :secret_hint,
				:previous_secret_ciphertext, :previous_secret_key_id, :previous_secret_until, :status, :failure_count, :created_at, :updated_at)`, w); err != nil {
			return fmt.Errorf("insert webhook: %w", err)
		}
		return nil
	})
}

// Overlapping reports whether the previous secret still signs at now.
func (w Webhook) Overlapping(now time.Time) bool {
	return w.PreviousKeyID.Valid && w.PreviousUntil.Valid && now.Before(w.PreviousUntil.Time)
}

// Rotate makes the current secret the previous one until until, and
// sealed (under keyID) the current one. A previous secret still
// pending from an earlier rotation is dropped: only the secret in use until
// now keeps signing. A zero until drops the previous secret at once.
func (w *Webhook) Rotate(keyID string, sealed []byte, hint string, until time.Time) {
	if until.IsZero() {
		w.PreviousCiphertext, w.PreviousKeyID, w.PreviousUntil = nil, sql.NullString{}, sql.NullTime{}
	} else {
		w.PreviousCiphertext, w.PreviousKeyID = w.SecretCiphertext, sql.NullString{String: w.SecretKeyID, Valid: true}
		w.PreviousUntil = sql.NullTime{Time: until, Valid: true}
	}
	w.SecretKeyID, w.SecretCiphertext, w.SecretHint = keyID, sealed, hint
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
			previous_secret_ciphertext = :previous_secret_ciphertext, previous_secret_key_id = :previous_secret_key_id,
			previous_secret_until = :previous_secret_until, status = :status, failure_count = :failure_count, updated_at = :updated_at WHERE id = :id`, w); err != nil {
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

const deliveryColumns = `id, webhook_id, org_id, event_id, event, body, status, attempt_count, attempts, next_attempt_at, claim, recovery_id, created_at, updated_at`

// ListDeliveries returns up to limit deliveries of a webhook of org, newest
// first, after the cursor id when given, narrowed by f.
func (s *Store) ListDeliveries(ctx context.Context, org string, webhookID uuid.UUID, limit int, after *uuid.UUID, f DeliveryFilter) ([]Delivery, error) {
	q := `SELECT ` + deliveryColumns + ` FROM webhook_deliveries WHERE webhook_id = $1 AND org_id = $2
		AND ($3::uuid IS NULL OR id < $3) AND ($4 = '' OR status = $4) AND ($5 = '' OR event = $5) ORDER BY id DESC LIMIT $6`
	var out []Delivery
	if err := s.db.SelectContext(ctx, &out, q, webhookID, org, after, f.Status, f.Event, limit); err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	return out, nil
}

// DeliveryFilter narrows a delivery list; an empty field matches every
// delivery.
type DeliveryFilter struct {
	Status string // PENDING, SUCCEEDED or FAILED
	Event  string // webhook event name
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
// two manual retries do not run at once. It answers a *ConflictError when the
// delivery is still pending an automatic attempt.
func (s *Store) StartManual(ctx context.Context, d Delivery) (Delivery, error) {
	var out Delivery
	err := s.db.GetContext(ctx, &out, `UPDATE webhook_deliveries SET claim = claim + 1, updated_at = now()
		WHERE id = $1 AND status <> 'PENDING' RETURNING `+deliveryColumns, d.ID)
	if errors.Is(err, sql.ErrNoRows) {
		return out, &ConflictError{Reason: "the delivery is pending an automatic attempt"}
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

// SecretRow is one encrypted secret of a webhook: its current secret, or
// with Previous the secret a rotation replaced, while it still signs.
type SecretRow struct {
	ID         uuid.UUID `db:"id"`
	KeyID      string    `db:"secret_key_id"`
	Ciphertext []byte    `db:"secret_ciphertext"`
	Previous   bool      `db:"previous"`
}

// SecretsNotUnder returns, in id order after the id after, up to limit
// secrets sealed with another key than keyID: the current secrets, or with
// previous the replaced secrets of rotations still overlapping.
func (s *Store) SecretsNotUnder(ctx context.Context, keyID string, previous bool, after uuid.UUID, limit int) ([]SecretRow, error) {
	q := `SELECT id, secret_key_id, secret_ciphertext, false AS previous FROM webhooks
		WHERE secret_key_id <> $1 AND id > $2 ORDER BY id LIMIT $3`
	if previous {
		q = `SELECT id, previous_secret_key_id AS secret_key_id, previous_secret_ciphertext AS secret_ciphertext, true AS previous FROM webhooks
			WHERE previous_secret_key_id <> $1 AND previous_secret_until > now() AND id > $2 ORDER BY id LIMIT $3`
	}
	var out []SecretRow
	if err := s.db.SelectContext(ctx, &out, q, keyID, after, limit); err != nil {
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
	q := `UPDATE webhooks SET secret_key_id = $2, secret_ciphertext = $3
		WHERE id = $1 AND secret_key_id = $4 AND secret_ciphertext = $5`
	if old.Previous {
		q = `UPDATE webhooks SET previous_secret_key_id = $2, previous_secret_ciphertext = $3
			WHERE id = $1 AND previous_secret_key_id = $4 AND previous_secret_ciphertext = $5`
	}
	if _, err := s.db.ExecContext(ctx, q, old.ID, keyID, ciphertext, old.KeyID, old.Ciphertext); err != nil {
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
