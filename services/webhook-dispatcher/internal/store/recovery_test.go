package store

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xpeditis/notify/pkg/testkit"
)

// A recovery is held by one replica at a time: another takes it only once
// the holder's lease ran out, after which the old holder's steps are
// refused and the new one goes on from the recorded position; a resumed
// step inserts no delivery twice.
func TestARecoveryWhoseHolderStoppedIsTakenOverWhereItStopped(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	w := activeWebhook(t, s, "org-1")
	now := Now()
	r := Recovery{ID: uuid.Must(uuid.NewV7()), WebhookID: w.ID, OrgID: w.OrgID, Since: now.Add(-time.Hour), Until: now, LastSeq: 100, CreatedAt: now}
	if err := s.CreateRecovery(ctx, r); err != nil {
		t.Fatal(err)
	}
	var conflict *ConflictError
	if err := s.CreateRecovery(ctx, Recovery{ID: uuid.Must(uuid.NewV7()), WebhookID: w.ID, OrgID: w.OrgID, Since: r.Since, Until: r.Until, CreatedAt: now}); !errors.As(err, &conflict) {
		t.Fatalf("a second running recovery: err %v, want a conflict", err)
	}
	if err := s.CreateRecovery(ctx, Recovery{ID: uuid.Must(uuid.NewV7()), WebhookID: w.ID, OrgID: "org-2", CreatedAt: now}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another organization's webhook: err %v, want not found", err)
	}

	const lease = 300 * time.Millisecond
	dying, survivor := uuid.New(), uuid.New()
	got, ok, err := s.TakeRecovery(ctx, dying, lease)
	if err != nil || !ok || got.ID != r.ID {
		t.Fatalf("take: %v %v %+v", ok, err, got)
	}
	if _, ok, _ := s.TakeRecovery(ctx, survivor, lease); ok {
		t.Fatal("a recovery under a live lease was taken")
	}
	rows := []RecoveredDelivery{{ID: uuid.Must(uuid.NewV7()), EventID: "e1", Event: "BOOKING_CREATED", Body: []byte(`{}`)}}
	if n, active, err := s.AdvanceRecovery(ctx, dying, got, lease, 5, 6, rows); err != nil || !active || n != 1 {
		t.Fatalf("advance: %d %v %v", n, active, err)
	}
	// The holder stops renewing; once the lease ran out another takes it.
	testkit.Eventually(t, 5*time.Second, "the recovery taken over", func() bool {
		got, ok, err = s.TakeRecovery(ctx, survivor, time.Minute)
		return err == nil && ok
	})
	if got.NextSeq != 6 || got.EventsRead != 5 || got.DeliveriesCreated != 1 {
		t.Fatalf("taken over at %+v, want next_seq 6 after 5 events and 1 delivery", got)
	}
	if _, _, err := s.AdvanceRecovery(ctx, dying, got, lease, 1, 7, nil); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("a step of the old holder: err %v, want ErrLeaseLost", err)
	}
	// The new holder repeats the step the old one recorded: nothing twice.
	again := []RecoveredDelivery{{ID: uuid.Must(uuid.NewV7()), EventID: "e1", Event: "BOOKING_CREATED", Body: []byte(`{}`)}}
	if n, _, err := s.AdvanceRecovery(ctx, survivor, got, time.Minute, 1, 7, again); err != nil || n != 0 {
		t.Fatalf("a repeated event: inserted %d, err %v; want 0", n, err)
	}
	if err := s.FinishRecovery(ctx, survivor, r.ID, ""); err != nil {
		t.Fatal(err)
	}
	done, err := s.GetRecovery(ctx, w.OrgID, w.ID, r.ID)
	if err != nil || done.Status != RecoverySucceeded || done.Pending != 1 || done.DeliveriesCreated != 1 {
		t.Fatalf("finished recovery: %+v, %v", done, err)
	}
}
