package store

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xpeditis/notify/pkg/postgres"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/webhook-dispatcher/migrations"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	db := testkit.Postgres(t)
	if err := postgres.Migrate(t.Context(), db, "webhook-dispatcher", migrations.FS); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return New(db)
}

func activeWebhook(t *testing.T, s *Store, org string) Webhook {
	t.Helper()
	now := time.Now().UTC()
	w := Webhook{ID: uuid.Must(uuid.NewV7()), OrgID: org, URL: "https://example.com/h", Events: []string{"BOOKING_CREATED"},
		SecretCiphertext: []byte{1}, SecretKeyID: "k", SecretHint: "…abcd", Status: StatusActive, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateWebhook(t.Context(), w, 1000); err != nil {
		t.Fatal(err)
	}
	return w
}

// A worker that dies holding a claim loses it when the lease runs out: the
// row is claimed again, and a late completion of the old claim records its
// attempt without changing the delivery's state.
func TestExpiredClaimsAreTakenAgainAndStaleCompletionsChangeNothing(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	w := activeWebhook(t, s, "org-1")
	row := NewDelivery{ID: uuid.Must(uuid.NewV7()), WebhookID: w.ID, OrgID: "org-1", EventID: "evt-1", Event: "BOOKING_CREATED", Body: []byte(`{}`)}
	jobs, err := s.InsertDeliveries(ctx, []NewDelivery{row}, 300*time.Millisecond)
	if err != nil || len(jobs) != 1 || jobs[0].Claim != 1 || jobs[0].Attempt != 1 {
		t.Fatalf("insert: %+v %v", jobs, err)
	}
	again, err := s.InsertDeliveries(ctx, []NewDelivery{{ID: uuid.Must(uuid.NewV7()), WebhookID: w.ID, OrgID: "org-1", EventID: "evt-1", Event: "BOOKING_CREATED", Body: []byte(`{}`)}}, time.Minute)
	if err != nil || len(again) != 0 {
		t.Fatalf("the same (event, webhook) inserted again: %+v %v", again, err)
	}
	if due, _ := s.ClaimDue(ctx, 10, time.Minute); len(due) != 0 {
		t.Fatalf("a claimed row was claimed again before its lease ran out: %+v", due)
	}
	var reclaimed []Job
	testkit.Eventually(t, 5*time.Second, "the lease to run out", func() bool {
		reclaimed, err = s.ClaimDue(ctx, 10, time.Minute)
		return err == nil && len(reclaimed) == 1
	})
	if reclaimed[0].Claim != 2 || reclaimed[0].DeliveryID != row.ID {
		t.Fatalf("reclaimed %+v", reclaimed[0])
	}

	// The first worker comes back late with a success: logged, no state change.
	if _, err := s.Complete(ctx, []Result{{Job: jobs[0], Attempt: Attempt{Number: 1, StatusCode: 200}, Status: DeliverySucceeded}}, 3); err != nil {
		t.Fatal(err)
	}
	d, err := s.GetDelivery(ctx, "org-1", w.ID, row.ID)
	if err != nil || d.Status != DeliveryPending || d.AttemptCount != 1 {
		t.Fatalf("after a stale completion: %+v %v", d, err)
	}
	// The current claim's failure schedules the retry and counts.
	if _, err := s.Complete(ctx, []Result{{Job: reclaimed[0], Attempt: Attempt{Number: 2, StatusCode: 500}, Status: DeliveryPending, RetryIn: time.Hour}}, 3); err != nil {
		t.Fatal(err)
	}
	d, _ = s.GetDelivery(ctx, "org-1", w.ID, row.ID)
	got, _ := s.GetWebhook(ctx, "org-1", w.ID)
	if d.Status != DeliveryPending || !d.NextAttemptAt.Valid || time.Until(d.NextAttemptAt.Time) < 50*time.Minute || got.FailureCount != 1 {
		t.Fatalf("after the current claim failed: delivery %+v, failureCount %d", d, got.FailureCount)
	}
}

// Failures in one batch are counted in order: a success resets, the
// threshold disables and stops the webhook's pending deliveries.
func TestCompleteCountsFailuresAndDisables(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	w := activeWebhook(t, s, "org-2")
	var rows []NewDelivery
	for i := range 4 {
		rows = append(rows, NewDelivery{ID: uuid.Must(uuid.NewV7()), WebhookID: w.ID, OrgID: "org-2", EventID: "e" + string(rune('a'+i)), Event: "BOOKING_CREATED", Body: []byte(`{}`)})
	}
	jobs, err := s.InsertDeliveries(ctx, rows, time.Minute)
	if err != nil || len(jobs) != 4 {
		t.Fatal(err)
	}
	fail := func(j Job) Result {
		return Result{Job: j, Attempt: Attempt{Number: 1, Error: "x"}, Status: DeliveryPending, RetryIn: time.Minute}
	}
	ok := func(j Job) Result {
		return Result{Job: j, Attempt: Attempt{Number: 1, StatusCode: 200}, Status: DeliverySucceeded}
	}
	if _, err := s.Complete(ctx, []Result{fail(jobs[0]), ok(jobs[1]), fail(jobs[2])}, 3); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetWebhook(ctx, "org-2", w.ID); got.FailureCount != 1 || got.Status != StatusActive {
		t.Fatalf("fail, success, fail: failureCount %d status %s, want 1 ACTIVE", got.FailureCount, got.Status)
	}
	disabled, err := s.Complete(ctx, []Result{fail(jobs[3]), fail(jobs[0])}, 3)
	if err != nil || len(disabled) != 1 || disabled[0].ID != w.ID {
		t.Fatalf("disabled = %+v, %v", disabled, err)
	}
	got, _ := s.GetWebhook(ctx, "org-2", w.ID)
	if got.FailureCount != 3 || got.Status != StatusFailed {
		t.Fatalf("failureCount %d status %s, want 3 FAILED", got.FailureCount, got.Status)
	}
	pending, _ := s.ListDeliveries(ctx, "org-2", w.ID, 10, nil, DeliveryPending)
	if len(pending) != 0 {
		t.Fatalf("%d deliveries still pending on a FAILED webhook", len(pending))
	}
	if more, _ := s.InsertDeliveries(ctx, []NewDelivery{{ID: uuid.Must(uuid.NewV7()), WebhookID: w.ID, OrgID: "org-2", EventID: "late", Event: "BOOKING_CREATED", Body: []byte(`{}`)}}, time.Minute); len(more) != 0 {
		t.Fatal("a delivery was inserted for a FAILED webhook")
	}
}

// Many failed attempts of one webhook in one batch (16 may be in flight at
// once) stop the count at the threshold, and attempts that finish after
// the webhook turned FAILED do not add to it.
func TestFailureCountStopsAtTheThreshold(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	w := activeWebhook(t, s, "org-3")
	var rows []NewDelivery
	for i := range 12 {
		rows = append(rows, NewDelivery{ID: uuid.Must(uuid.NewV7()), WebhookID: w.ID, OrgID: "org-3", EventID: "c" + string(rune('a'+i)), Event: "BOOKING_CREATED", Body: []byte(`{}`)})
	}
	jobs, err := s.InsertDeliveries(ctx, rows, time.Minute)
	if err != nil || len(jobs) != 12 {
		t.Fatalf("insert: %d jobs, %v", len(jobs), err)
	}
	fail := func(js ...Job) []Result {
		var out []Result
		for _, j := range js {
			out = append(out, Result{Job: j, Attempt: Attempt{Number: 1, Error: "connect: connection refused"}, Status: DeliveryPending, RetryIn: time.Minute})
		}
		return out
	}
	if _, err := s.Complete(ctx, fail(jobs[0]), 3); err != nil {
		t.Fatal(err)
	}
	disabled, err := s.Complete(ctx, fail(jobs[1:8]...), 3)
	if err != nil || len(disabled) != 1 || disabled[0].FailureCount != 3 {
		t.Fatalf("disabled = %+v, %v; want the webhook, at failureCount 3", disabled, err)
	}
	if got, _ := s.GetWebhook(ctx, "org-3", w.ID); got.FailureCount != 3 || got.Status != StatusFailed {
		t.Fatalf("after 8 failures (7 in one batch): failureCount %d status %s, want 3 FAILED", got.FailureCount, got.Status)
	}
	// Attempts that were in flight when the webhook turned FAILED.
	disabled, err = s.Complete(ctx, fail(jobs[8:]...), 3)
	if err != nil || len(disabled) != 0 {
		t.Fatalf("late failures disabled %+v again (%v)", disabled, err)
	}
	if got, _ := s.GetWebhook(ctx, "org-3", w.ID); got.FailureCount != 3 || got.Status != StatusFailed {
		t.Fatalf("after late failures: failureCount %d status %s, want 3 FAILED", got.FailureCount, got.Status)
	}
}

// Deliveries inserted while a webhook is being turned FAILED (the fan-out of
// an event racing the recorder) are not left PENDING on the FAILED webhook,
// where nothing would ever send or stop them: the insert waits for the
// change and then skips the webhook.
func TestDeliveriesInsertedWhileAWebhookIsDisabledAreNotLeftPending(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	w := activeWebhook(t, s, "org-4")

	// What Complete does when a webhook reaches the threshold, held open.
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // committed below
	if _, err := tx.ExecContext(ctx, `SELECT id FROM webhooks WHERE id = $1 FOR UPDATE`, w.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE webhooks SET status = 'FAILED', failure_count = 3 WHERE id = $1`, w.ID); err != nil {
		t.Fatal(err)
	}
	if err := stopPending(ctx, tx, []uuid.UUID{w.ID}); err != nil {
		t.Fatal(err)
	}

	type inserted struct {
		jobs []Job
		err  error
	}
	done := make(chan inserted, 1)
	go func() {
		jobs, err := s.InsertDeliveries(context.Background(), []NewDelivery{{ID: uuid.Must(uuid.NewV7()), WebhookID: w.ID, OrgID: "org-4", EventID: "racing", Event: "BOOKING_CREATED", Body: []byte(`{}`)}}, time.Minute)
		done <- inserted{jobs, err}
	}()
	testkit.Eventually(t, 5*time.Second, "the insert to wait for the disabling transaction", func() bool {
		var waiting int
		_ = s.db.Get(&waiting, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO webhook_deliveries%'`)
		return waiting == 1
	})
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	var pending int
	if err := s.db.Get(&pending, `SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1 AND status = 'PENDING'`, w.ID); err != nil {
		t.Fatal(err)
	}
	if pending != 0 || len(res.jobs) != 0 {
		t.Fatalf("%d deliveries PENDING on a FAILED webhook, %d jobs handed out", pending, len(res.jobs))
	}
}
