package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xpeditis/notify/pkg/testkit"
)

// Concurrent creates never take an organization past its limit: the count
// and the insert run under a lock on the organization. Without it, creates
// racing at 9 of 10 all saw room.
func TestConcurrentCreatesStopAtTheLimit(t *testing.T) {
	s := newStore(t)
	const max, tries = 10, 40
	org := "org-" + uuid.NewString()
	other := "org-" + uuid.NewString()
	var wg sync.WaitGroup
	var mu sync.Mutex
	created, refused := 0, 0
	for i := range tries {
		wg.Go(func() {
			o := org
			if i%4 == 3 {
				o = other
			}
			now := time.Now().UTC()
			w := Webhook{ID: uuid.Must(uuid.NewV7()), OrgID: o, URL: "https://example.com/h", Events: []string{"BOOKING_CREATED"},
				SecretCiphertext: []byte{1}, SecretKeyID: "k", SecretHint: "…abcd", Status: StatusActive, CreatedAt: now, UpdatedAt: now}
			err := s.CreateWebhook(t.Context(), w, max)
			var limit *LimitError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case errors.As(err, &limit) && limit.Max == max:
				refused++
			default:
				t.Errorf("create: %v", err)
			}
		})
	}
	wg.Wait()
	var n, m int
	if err := s.db.Get(&n, `SELECT count(*) FROM webhooks WHERE org_id = $1`, org); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Get(&m, `SELECT count(*) FROM webhooks WHERE org_id = $1`, other); err != nil {
		t.Fatal(err)
	}
	if n != max || m != max || created != 2*max || refused != tries-2*max {
		t.Fatalf("%d and %d webhooks stored, %d created, %d refused; want %d each, %d refused", n, m, created, refused, max, tries-2*max)
	}
}

// Deleting a webhook deletes its delivery log, deliveries being inserted
// at that moment included: the delete waits for an insert that holds the
// webhook (as InsertDeliveries and AdvanceRecovery do, FOR SHARE) and then
// sees its rows; nothing is left for a webhook that is gone.
func TestDeletingAWebhookDeletesItsDeliveriesEvenOnesBeingInserted(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	w := activeWebhook(t, s, "org-del")
	holder := liveHolder(t, s, time.Minute)
	if _, err := s.InsertDeliveries(ctx, holder, uuid.New(), []NewDelivery{newDelivery(w, "before")}); err != nil {
		t.Fatal(err)
	}

	// An insert under way: the webhook held FOR SHARE, a row written, not
	// committed yet.
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // committed below
	if _, err := tx.ExecContext(ctx, `SELECT id FROM webhooks WHERE id = $1 FOR SHARE`, w.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (id, webhook_id, org_id, event_id, event, body, status, next_attempt_at,
		claim, attempt_count, attempts, created_at, updated_at) VALUES ($1, $2, $3, 'racing', 'BOOKING_CREATED', '\x7b7d', 'PENDING', now(), 0, 0, '[]', now(), now())`,
		uuid.Must(uuid.NewV7()), w.ID, w.OrgID); err != nil {
		t.Fatal(err)
	}
	deleted := make(chan error, 1)
	go func() { deleted <- s.DeleteWebhook(context.Background(), w.OrgID, w.ID) }()
	testkit.Eventually(t, 5*time.Second, "the delete to wait for the insert", func() bool {
		var waiting int
		_ = s.db.Get(&waiting, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%DELETE FROM webhooks%'`)
		return waiting == 1
	})
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	var left int
	if err := s.db.Get(&left, `SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1`, w.ID); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d deliveries left behind by the deleted webhook", left)
	}
	// And an insert after the delete finds no webhook to deliver to.
	jobs, err := s.InsertDeliveries(ctx, holder, uuid.New(), []NewDelivery{newDelivery(w, "after")})
	if err != nil || len(jobs) != 0 {
		t.Fatalf("insert for a deleted webhook: %d jobs, %v", len(jobs), err)
	}
	if err := s.db.Get(&left, `SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1`, w.ID); err != nil || left != 0 {
		t.Fatalf("%d deliveries inserted for a deleted webhook (%v)", left, err)
	}
}
