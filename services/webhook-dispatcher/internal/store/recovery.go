package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// Recovery statuses.
const (
	RecoveryRunning   = "RUNNING"
	RecoverySucceeded = "SUCCEEDED"
	RecoveryFailed    = "FAILED"
)

// Recovery is a row of webhook_recoveries: a job that sends again the
// events of a window to one webhook.
type Recovery struct {
	ID                uuid.UUID    `db:"id"`
	WebhookID         uuid.UUID    `db:"webhook_id"`
	OrgID             string       `db:"org_id"`
	Since             time.Time    `db:"since"`
	Until             time.Time    `db:"until"`
	LastSeq           uint64       `db:"last_seq"`
	NextSeq           uint64       `db:"next_seq"`
	Status            string       `db:"status"`
	EventsRead        int64        `db:"events_read"`
	DeliveriesCreated int64        `db:"deliveries_created"`
	Error             string       `db:"error"`
	CreatedAt         time.Time    `db:"created_at"`
	UpdatedAt         time.Time    `db:"updated_at"`
	FinishedAt        sql.NullTime `db:"finished_at"`
	// Counts of its deliveries by status, filled by GetRecovery.
	Pending   int `db:"-"`
	Succeeded int `db:"-"`
	Failed    int `db:"-"`
}

const recoveryColumns = `id, webhook_id, org_id, since, until, last_seq, next_seq, status, events_read, deliveries_created, error, created_at, updated_at, finished_at`

// CreateRecovery inserts a running recovery for an ACTIVE webhook of its
// organization: ErrNotFound when there is no such webhook, a
// *ConflictError when the webhook is not ACTIVE or already has a running
// recovery.
func (s *Store) CreateRecovery(ctx context.Context, r Recovery) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		var status string
		err := tx.GetContext(ctx, &status, `SELECT status FROM webhooks WHERE id = $1 AND org_id = $2 FOR SHARE`, r.WebhookID, r.OrgID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("lock webhook: %w", err)
		}
		if status != StatusActive {
			return &ConflictError{Reason: fmt.Sprintf("the webhook is %s; re-activate it (PATCH status ACTIVE) before recovering its events", status)}
		}
		var running uuid.UUID
		err = tx.GetContext(ctx, &running, `INSERT INTO webhook_recoveries (`+recoveryColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, 0, 'RUNNING', 0, 0, '', $7, $7, NULL)
			ON CONFLICT (webhook_id) WHERE status = 'RUNNING' DO NOTHING RETURNING id`,
			r.ID, r.WebhookID, r.OrgID, r.Since, r.Until, r.LastSeq, r.CreatedAt)
		if errors.Is(err, sql.ErrNoRows) {
			if err := tx.GetContext(ctx, &running, `SELECT id FROM webhook_recoveries WHERE webhook_id = $1 AND status = 'RUNNING'`, r.WebhookID); err != nil {
				return fmt.Errorf("find running recovery: %w", err)
			}
			return &ConflictError{Reason: fmt.Sprintf("recovery %s of this webhook is still running; one runs at a time", running)}
		}
		if err != nil {
			return fmt.Errorf("insert recovery: %w", err)
		}
		return nil
	})
}

// GetRecovery returns a recovery of a webhook of org, with its deliveries
// counted by status.
func (s *Store) GetRecovery(ctx context.Context, org string, webhookID, id uuid.UUID) (Recovery, error) {
	var r Recovery
	err := s.db.GetContext(ctx, &r, `SELECT `+recoveryColumns+` FROM webhook_recoveries WHERE id = $1 AND webhook_id = $2 AND org_id = $3`, id, webhookID, org)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("get recovery: %w", err)
	}
	var counts []struct {
		Status string `db:"status"`
		N      int    `db:"n"`
	}
	if err := s.db.SelectContext(ctx, &counts, `SELECT status, count(*) AS n FROM webhook_deliveries WHERE recovery_id = $1 GROUP BY status`, id); err != nil {
		return r, fmt.Errorf("count recovered deliveries: %w", err)
	}
	for _, c := range counts {
		switch c.Status {
		case DeliveryPending:
			r.Pending = c.N
		case DeliverySucceeded:
			r.Succeeded = c.N
		case DeliveryFailed:
			r.Failed = c.N
		}
	}
	return r, nil
}

// TakeRecovery gives holder, for lease, a running recovery whose lease ran
// out (a new one, or one whose replica stopped); false when there is none.
func (s *Store) TakeRecovery(ctx context.Context, holder uuid.UUID, lease time.Duration) (Recovery, bool, error) {
	var r Recovery
	err := s.db.GetContext(ctx, &r, `UPDATE webhook_recoveries SET holder = $1, lease_until = now() + $2 * interval '1 millisecond', updated_at = now()
		WHERE id = (SELECT id FROM webhook_recoveries WHERE status = 'RUNNING' AND lease_until < now()
			ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING `+recoveryColumns, holder, lease.Milliseconds())
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("take recovery: %w", err)
	}
	return r, true, nil
}

// ErrLeaseLost says that a recovery is no longer held by the caller (its
// lease ran out and another replica took it, or it was finished).
var ErrLeaseLost = errors.New("recovery lease lost")

// RecoveredDelivery is a delivery a recovery creates.
type RecoveredDelivery struct {
	ID      uuid.UUID
	EventID string
	Event   string
	Body    []byte
}

// AdvanceRecovery records one step of a recovery held by holder, in one
// transaction: its deliveries are inserted unclaimed and due now (the
// poller and the scheduler send them with the webhook's live traffic), the
// read position moves to nextSeq, and the lease is extended. active is
// false when the webhook is no longer ACTIVE (nothing was inserted).
func (s *Store) AdvanceRecovery(ctx context.Context, holder uuid.UUID, r Recovery, lease time.Duration, read int, nextSeq uint64, rows []RecoveredDelivery) (inserted int, active bool, err error) {
	n := len(rows)
	ids, events, names, bodies := make([]string, n), make([]string, n), make([]string, n), make([][]byte, n)
	for i, d := range rows {
		ids[i], events[i], names[i], bodies[i] = d.ID.String(), d.EventID, d.Event, d.Body
	}
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		var status string
		if err := tx.GetContext(ctx, &status, `SELECT w.status FROM webhook_recoveries r JOIN webhooks w ON w.id = r.webhook_id
			WHERE r.id = $1 AND r.holder = $2 AND r.status = 'RUNNING' FOR SHARE OF w FOR UPDATE OF r`, r.ID, holder); errors.Is(err, sql.ErrNoRows) {
			return ErrLeaseLost
		} else if err != nil {
			return fmt.Errorf("lock recovery: %w", err)
		}
		active = status == StatusActive
		if active && n > 0 {
			res, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (id, webhook_id, org_id, event_id, event, body, status,
					next_attempt_at, claim, attempt_count, attempts, created_at, updated_at, recovery_id)
				SELECT v.id, $1, $2, v.event_id, v.event, v.body, 'PENDING', now(), 0, 0, '[]', now(), now(), $3
				FROM unnest($4::uuid[], $5::text[], $6::text[], $7::bytea[]) AS v(id, event_id, event, body)
				ON CONFLICT (recovery_id, event_id) WHERE recovery_id IS NOT NULL DO NOTHING`,
				r.WebhookID, r.OrgID, r.ID, pq.Array(ids), pq.Array(events), pq.Array(names), pq.ByteaArray(bodies))
			if err != nil {
				return fmt.Errorf("insert recovered deliveries: %w", err)
			}
			m, _ := res.RowsAffected()
			inserted = int(m)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE webhook_recoveries SET next_seq = $2, events_read = events_read + $3,
			deliveries_created = deliveries_created + $4, lease_until = now() + $5 * interval '1 millisecond', updated_at = now()
			WHERE id = $1`, r.ID, nextSeq, read, inserted, lease.Milliseconds()); err != nil {
			return fmt.Errorf("record recovery progress: %w", err)
		}
		return nil
	})
	return inserted, active, err
}

// RecoveryBacklog is how many deliveries of a recovery are still pending.
func (s *Store) RecoveryBacklog(ctx context.Context, id uuid.UUID) (int, error) {
	var n int
	if err := s.db.GetContext(ctx, &n, `SELECT count(*) FROM webhook_deliveries WHERE recovery_id = $1 AND status = 'PENDING'`, id); err != nil {
		return 0, fmt.Errorf("count recovery backlog: %w", err)
	}
	return n, nil
}

// RenewRecovery extends holder's lease of a recovery (ErrLeaseLost when it
// no longer holds it).
func (s *Store) RenewRecovery(ctx context.Context, holder, id uuid.UUID, lease time.Duration) error {
	res, err := s.db.ExecContext(ctx, `UPDATE webhook_recoveries SET lease_until = now() + $3 * interval '1 millisecond'
		WHERE id = $1 AND holder = $2 AND status = 'RUNNING'`, id, holder, lease.Milliseconds())
	if err != nil {
		return fmt.Errorf("renew recovery lease: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrLeaseLost
	}
	return nil
}

// FinishRecovery ends a recovery held by holder: SUCCEEDED with an empty
// reason, else FAILED with it. Its lease is released either way.
func (s *Store) FinishRecovery(ctx context.Context, holder, id uuid.UUID, reason string) error {
	status := RecoverySucceeded
	if reason != "" {
		status = RecoveryFailed
	}
	res, err := s.db.ExecContext(ctx, `UPDATE webhook_recoveries SET status = $3, error = $4, holder = NULL, finished_at = now(), updated_at = now()
		WHERE id = $1 AND holder = $2 AND status = 'RUNNING'`, id, holder, status, reason)
	if err != nil {
		return fmt.Errorf("finish recovery: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrLeaseLost
	}
	return nil
}

// ReleaseRecovery hands a recovery back at once (a graceful stop), so that
// another replica, or the next start, goes on with it.
func (s *Store) ReleaseRecovery(ctx context.Context, holder, id uuid.UUID) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE webhook_recoveries SET holder = NULL, lease_until = now(), updated_at = now()
		WHERE id = $1 AND holder = $2 AND status = 'RUNNING'`, id, holder); err != nil {
		return fmt.Errorf("release recovery: %w", err)
	}
	return nil
}
