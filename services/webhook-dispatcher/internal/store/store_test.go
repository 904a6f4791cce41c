package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xpeditis/notify/pkg/postgres"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/webhook-dispatcher/migrations"
)

func newStore(t testing.TB) *Store {
	t.Helper()
	db := testkit.Postgres(t)
	if err := postgres.Migrate(t.Context(), db, "webhook-dispatcher", migrations.FS); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return New(db)
}

func activeWebhook(t testing.TB, s *Store, org string) Webhook {
	t.Helper()
	now := time.Now().UTC()
	w := Webhook{ID: uuid.Must(uuid.NewV7()), OrgID: org, URL: "https://example.com/h", Events: []string{"BOOKING_CREATED"},
		SecretCiphertext: []byte{1}, SecretKeyID: "k", SecretHint: "…abcd", Status: StatusActive, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateWebhook(t.Context(), w, 1000); err != nil {
		t.Fatal(err)
	}
	return w
}

// liveHolder is a holder with a live lease of ttl.
func liveHolder(t testing.TB, s *Store, ttl time.Duration) uuid.UUID {
	t.Helper()
	h := uuid.New()
	if _, err := s.RenewLease(t.Context(), h, ttl, nil); err != nil {
		t.Fatalf("lease: %v", err)
	}
	return h
}

// elapse lets d pass for the leases on the database's clock, as if no
// holder renewed meanwhile: every lease row is moved d into the past. The
// tests of the takeover rule step time with it under leases of a minute,
// so that the real time their statements take, however loaded the machine
// is, neither lets a lease run out nor makes one last long enough to count.
func elapse(t *testing.T, s *Store, d time.Duration) {
	t.Helper()
	if _, err := s.db.Exec(`UPDATE webhook_leases SET expires_at = expires_at - $1 * interval '1 millisecond',
		live_since = live_since - $1 * interval '1 millisecond'`, d.Milliseconds()); err != nil {
		t.Fatalf("elapse %s: %v", d, err)
	}
}

func newDelivery(w Webhook, eventID string) NewDelivery {
	return NewDelivery{ID: uuid.Must(uuid.NewV7()), WebhookID: w.ID, OrgID: w.OrgID, EventID: eventID, Event: "BOOKING_CREATED", Body: []byte(`{}`)}
}

// attemptsOf decodes the delivery log of d.
func attemptsOf(t *testing.T, d Delivery) []Attempt {
	t.Helper()
	var out []Attempt
	if err := json.Unmarshal(d.Attempts, &out); err != nil {
		t.Fatalf("attempts %s: %v", d.Attempts, err)
	}
	return out
}

func logOf(as []Attempt) string {
	var b strings.Builder
	for _, a := range as {
		fmt.Fprintf(&b, "%d:%s ", a.Number, a.Outcome)
	}
	return strings.TrimSpace(b.String())
}

// A holder that stops renewing its lease loses its deliveries to another
// holder once its lease has been expired for a lease period while the
// other's was live: the attempt it had started is logged as
// interrupted, the next claim starts attempt 2, and a late completion of the
// old claim fills in its own entry without changing the delivery's state.
func TestADeadHoldersDeliveriesAreTakenOverWithTheirAttemptInterrupted(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	w := activeWebhook(t, s, "org-1")
	const ttl = time.Minute
	dying, survivor := liveHolder(t, s, ttl), liveHolder(t, s, ttl)
	row := newDelivery(w, "evt-1")
	jobs, err := s.InsertDeliveries(ctx, dying, uuid.New(), []NewDelivery{row})
	if err != nil || len(jobs) != 1 || jobs[0].Claim != 1 || jobs[0].Attempt != 1 {
		t.Fatalf("insert: %+v %v", jobs, err)
	}
	d, _ := s.GetDelivery(ctx, "org-1", w.ID, row.ID)
	if got := logOf(attemptsOf(t, d)); got != "1:started" || d.AttemptCount != 1 {
		t.Fatalf("after the claim: log %q, attempt_count %d; want the first attempt started", got, d.AttemptCount)
	}
	if again, err := s.InsertDeliveries(ctx, dying, uuid.New(), []NewDelivery{newDelivery(w, "evt-1")}); err != nil || len(again) != 0 {
		t.Fatalf("the same (event, webhook) inserted again: %+v %v", again, err)
	}
	if due, _ := s.ClaimDue(ctx, survivor, uuid.New(), 10); len(due) != 0 {
		t.Fatalf("a held delivery was claimed by another holder: %+v", due)
	}
	// The dying holder stops renewing; the survivor renews every half
	// lease. Up to half a lease after the dying lease ran out, nothing is
	// taken over; a whole lease after, the survivor's renewal takes it.
	for i := 1; i <= 4; i++ {
		elapse(t, s, ttl/2)
		r, err := s.RenewLease(ctx, survivor, ttl, nil)
		if want := i / 4; err != nil || r.Lapsed || r.TakenOver != want {
			t.Fatalf("the survivor's renewal %s after the dying holder's: %+v %v; want %d taken over", time.Duration(i)*ttl/2, r, err, want)
		}
	}
	if r, err := s.RenewLease(ctx, dying, ttl, nil); err != nil || r.Losses != 1 {
		t.Fatalf("the dead holder's renewal: %+v %v; want its deliveries reported lost once", r, err)
	}
	d, _ = s.GetDelivery(ctx, "org-1", w.ID, row.ID)
	if got := logOf(attemptsOf(t, d)); got != "1:interrupted" || d.Status != DeliveryPending {
		t.Fatalf("after the takeover: log %q, status %s", got, d.Status)
	}
	reclaimed, err := s.ClaimDue(ctx, survivor, uuid.New(), 10)
	if err != nil || len(reclaimed) != 1 {
		t.Fatalf("claim after the takeover: %+v %v", reclaimed, err)
	}
	if j := reclaimed[0]; j.Claim != 2 || j.Attempt != 2 || j.Interrupted != 1 || j.DeliveryID != row.ID {
		t.Fatalf("reclaimed %+v; want claim 2, attempt 2, 1 interrupted", j)
	}

	// The dead holder's request was answered after all: logged, no state change.
	if _, err := s.Complete(ctx, []Result{{Job: jobs[0], Attempt: Attempt{Number: 1, Outcome: OutcomeSuccess, StatusCode: 200}, Status: DeliverySucceeded}}, 3); err != nil {
		t.Fatal(err)
	}
	d, _ = s.GetDelivery(ctx, "org-1", w.ID, row.ID)
	if got := logOf(attemptsOf(t, d)); got != "1:success 2:started" || d.Status != DeliveryPending || d.AttemptCount != 2 {
		t.Fatalf("after a stale completion: log %q, status %s, attempt_count %d", got, d.Status, d.AttemptCount)
	}
	// The current claim's failure schedules the retry and counts.
	if _, err := s.Complete(ctx, []Result{{Job: reclaimed[0], Attempt: Attempt{Number: 2, Outcome: OutcomeHTTPError, StatusCode: 500}, Status: DeliveryPending, RetryIn: time.Hour}}, 3); err != nil {
		t.Fatal(err)
	}
	d, _ = s.GetDelivery(ctx, "org-1", w.ID, row.ID)
	got, _ := s.GetWebhook(ctx, "org-1", w.ID)
	if d.Status != DeliveryPending || !d.NextAttemptAt.Valid || time.Until(d.NextAttemptAt.Time) < 50*time.Minute || got.FailureCount != 1 {
		t.Fatalf("after the current claim failed: delivery %+v, failureCount %d", d, got.FailureCount)
	}
	if log := logOf(attemptsOf(t, d)); log != "1:success 2:http_error" {
		t.Fatalf("final log %q", log)
	}
}

// A holder claims nothing without a live lease: its new deliveries are
// inserted unclaimed and due at once, for any replica, with no attempt
// started; once it renews, it claims them.
func TestNothingIsClaimedWithoutALiveLease(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	w := activeWebhook(t, s, "org-5")
	holder := uuid.New() // never renewed
	row := newDelivery(w, "evt-5")
	jobs, err := s.InsertDeliveries(ctx, holder, uuid.New(), []NewDelivery{row})
	if err != nil || len(jobs) != 0 {
		t.Fatalf("insert without a lease handed out %+v (%v)", jobs, err)
	}
	d, _ := s.GetDelivery(ctx, "org-5", w.ID, row.ID)
	if d.Status != DeliveryPending || !d.NextAttemptAt.Valid || d.AttemptCount != 0 || len(attemptsOf(t, d)) != 0 {
		t.Fatalf("inserted without a lease: %+v", d)
	}
	if due, err := s.ClaimDue(ctx, holder, uuid.New(), 10); err != nil || len(due) != 0 {
		t.Fatalf("claimed without a lease: %+v %v", due, err)
	}
	if r, err := s.RenewLease(ctx, holder, time.Minute, nil); err != nil || !r.Lapsed {
		t.Fatalf("first renewal: %+v %v; want it reported as a new lease", r, err)
	}
	due, err := s.ClaimDue(ctx, holder, uuid.New(), 10)
	if err != nil || len(due) != 1 || due[0].Attempt != 1 || due[0].Interrupted != 0 {
		t.Fatalf("claim under a live lease: %+v %v", due, err)
	}
}

// A job handed back unsent gives its attempt number back: the log loses the
// started entry and the next claim makes the same attempt. Handing back a
// claim that was taken over since changes nothing.
func TestHandingBackAnUnsentJobTakesItsAttemptBack(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	w := activeWebhook(t, s, "org-6")
	holder := liveHolder(t, s, time.Minute)
	rows := []NewDelivery{newDelivery(w, "a"), newDelivery(w, "b")}
	jobs, err := s.InsertDeliveries(ctx, holder, uuid.New(), rows)
	if err != nil || len(jobs) != 2 {
		t.Fatalf("insert: %+v %v", jobs, err)
	}
	if err := s.ReleaseClaims(ctx, jobs[:1], 0); err != nil {
		t.Fatal(err)
	}
	// The other one through the recorder's path, due in an hour.
	if _, err := s.Complete(ctx, []Result{{Job: jobs[1], Unsent: true, RetryIn: time.Hour}}, 3); err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		d, _ := s.GetDelivery(ctx, "org-6", w.ID, r.ID)
		if d.AttemptCount != 0 || len(attemptsOf(t, d)) != 0 || d.Status != DeliveryPending || !d.NextAttemptAt.Valid {
			t.Fatalf("delivery %d handed back: %+v", i, d)
		}
		if wait := time.Until(d.NextAttemptAt.Time); (i == 0) != (wait < time.Minute) {
			t.Fatalf("delivery %d handed back due in %s", i, wait)
		}
	}
	due, err := s.ClaimDue(ctx, holder, uuid.New(), 10)
	if err != nil || len(due) != 1 || due[0].Attempt != 1 || due[0].Claim != 2 {
		t.Fatalf("claim after the hand-back: %+v %v; want attempt 1 again, claim 2", due, err)
	}
	// A hand-back of the old claim finds another claim: nothing changes.
	if err := s.ReleaseClaims(ctx, jobs[:1], 0); err != nil {
		t.Fatal(err)
	}
	d, _ := s.GetDelivery(ctx, "org-6", w.ID, rows[0].ID)
	if got := logOf(attemptsOf(t, d)); got != "1:started" || d.AttemptCount != 1 {
		t.Fatalf("after a stale hand-back: log %q, attempt_count %d", got, d.AttemptCount)
	}
}

// A holder that ends its lease (a graceful stop) has what it still held
// taken over by another holder a lease period later.
func TestAnEndedLeaseIsTakenOverALeasePeriodLater(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	w := activeWebhook(t, s, "org-7")
	const ttl = time.Minute
	leaving, staying := liveHolder(t, s, ttl), liveHolder(t, s, ttl)
	if jobs, err := s.InsertDeliveries(ctx, leaving, uuid.New(), []NewDelivery{newDelivery(w, "x")}); err != nil || len(jobs) != 1 {
		t.Fatalf("insert: %+v %v", jobs, err)
	}
	if r, err := s.RenewLease(ctx, staying, ttl, nil); err != nil || r.TakenOver != 0 {
		t.Fatalf("renewal while the other lease is live: %+v %v", r, err)
	}
	if err := s.EndLease(ctx, leaving); err != nil {
		t.Fatal(err)
	}
	if r, err := s.RenewLease(ctx, staying, ttl, nil); err != nil || r.TakenOver != 0 {
		t.Fatalf("renewal right after the other lease ended: %+v %v; want nothing taken over yet", r, err)
	}
	elapse(t, s, ttl/2)
	if r, err := s.RenewLease(ctx, staying, ttl, nil); err != nil || r.TakenOver != 0 {
		t.Fatalf("renewal half a lease after the other lease ended: %+v %v; want nothing taken over yet", r, err)
	}
	elapse(t, s, ttl/2)
	if r, err := s.RenewLease(ctx, staying, ttl, nil); err != nil || r.TakenOver != 1 {
		t.Fatalf("renewal a lease after the other lease ended: %+v %v; want its delivery taken over", r, err)
	}
}

// An outage that both holders share lets both leases run out: when the
// database is back, the first holder to renew takes nothing over; the other
// renews within a lease period, keeps its delivery (no loss reported) and
// still holds it, however long both stay live afterwards.
func TestAfterASharedOutageTheFirstToRenewTakesNothingFromAHolderThatRenewsWithinALease(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	w := activeWebhook(t, s, "org-8")
	const ttl = time.Minute
	first, second := liveHolder(t, s, ttl), liveHolder(t, s, ttl)
	jobs, err := s.InsertDeliveries(ctx, second, uuid.New(), []NewDelivery{newDelivery(w, "held")})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("insert: %+v %v", jobs, err)
	}
	elapse(t, s, 3*ttl) // the outage: both leases expired for two leases
	if r, err := s.RenewLease(ctx, first, ttl, nil); err != nil || !r.Lapsed || r.TakenOver != 0 {
		t.Fatalf("first renewal after the outage: %+v %v; want lapsed, nothing taken over", r, err)
	}
	elapse(t, s, ttl/2)
	if r, err := s.RenewLease(ctx, first, ttl, nil); err != nil || r.Lapsed || r.TakenOver != 0 {
		t.Fatalf("the first's renewal half a lease later: %+v %v; want nothing taken over", r, err)
	}
	if r, err := s.RenewLease(ctx, second, ttl, nil); err != nil || !r.Lapsed || r.Losses != 0 {
		t.Fatalf("the other's renewal: %+v %v; want lapsed, nothing lost", r, err)
	}
	for range 4 { // both live for two more leases, renewing every half lease
		elapse(t, s, ttl/2)
		for _, h := range []uuid.UUID{first, second} {
			r, err := s.RenewLease(ctx, h, ttl, nil)
			if err != nil || r.Lapsed || r.TakenOver != 0 || r.Losses != 0 {
				t.Fatalf("renewal of %s: %+v %v; want both kept live, nothing taken over", h, r, err)
			}
		}
	}
	var holder uuid.UUID
	if err := s.db.Get(&holder, `SELECT holder FROM webhook_deliveries WHERE id = $1`, jobs[0].DeliveryID); err != nil || holder != second {
		t.Fatalf("the delivery is held by %s (%v); want its own holder %s", holder, err, second)
	}
	// Its answer is recorded under the claim it still has.
	if _, err := s.Complete(ctx, []Result{{Job: jobs[0], Attempt: Attempt{Number: 1, Outcome: OutcomeSuccess, StatusCode: 200}, Status: DeliverySucceeded}}, 3); err != nil {
		t.Fatal(err)
	}
	d, _ := s.GetDelivery(ctx, "org-8", w.ID, jobs[0].DeliveryID)
	if got := logOf(attemptsOf(t, d)); got != "1:success" || d.Status != DeliverySucceeded {
		t.Fatalf("after the outage: log %q, status %s", got, d.Status)
	}
}

// A claim statement whose outcome its holder never learnt (the connection
// broke) may have claimed rows: the holder's next renewal, told the
// statement's batch, hands them back due now with their attempt taken back,
// and leaves the holder's other claims alone.
func TestARenewalHandsBackTheRowsOfAClaimWhoseOutcomeWasNotLearnt(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	w := activeWebhook(t, s, "org-9")
	holder := liveHolder(t, s, time.Minute)
	unknown, known := uuid.New(), uuid.New()
	lostJobs, err := s.InsertDeliveries(ctx, holder, unknown, []NewDelivery{newDelivery(w, "unknown")})
	if err != nil || len(lostJobs) != 1 {
		t.Fatalf("insert: %+v %v", lostJobs, err)
	}
	kept, err := s.InsertDeliveries(ctx, holder, known, []NewDelivery{newDelivery(w, "known")})
	if err != nil || len(kept) != 1 {
		t.Fatalf("insert: %+v %v", kept, err)
	}
	if _, err := s.RenewLease(ctx, holder, time.Minute, []uuid.UUID{unknown}); err != nil {
		t.Fatal(err)
	}
	d, _ := s.GetDelivery(ctx, "org-9", w.ID, lostJobs[0].DeliveryID)
	if d.AttemptCount != 0 || len(attemptsOf(t, d)) != 0 || d.Status != DeliveryPending || !d.NextAttemptAt.Valid || time.Until(d.NextAttemptAt.Time) > 0 {
		t.Fatalf("the row of the unknown claim: %+v; want it unclaimed, due now, no attempt", d)
	}
	var holders []uuid.UUID
	if err := s.db.Select(&holders, `SELECT holder FROM webhook_deliveries WHERE holder IS NOT NULL`); err != nil || len(holders) != 1 || holders[0] != holder {
		t.Fatalf("held rows: %v %v; want only the known claim", holders, err)
	}
	due, err := s.ClaimDue(ctx, holder, uuid.New(), 10)
	if err != nil || len(due) != 1 || due[0].Attempt != 1 || due[0].DeliveryID != lostJobs[0].DeliveryID {
		t.Fatalf("claim after the hand-back: %+v %v; want attempt 1 of the handed-back row", due, err)
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
	jobs, err := s.InsertDeliveries(ctx, liveHolder(t, s, time.Minute), uuid.New(), rows)
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
	pending, _ := s.ListDeliveries(ctx, "org-2", w.ID, 10, nil, DeliveryFilter{Status: DeliveryPending})
	if len(pending) != 0 {
		t.Fatalf("%d deliveries still pending on a FAILED webhook", len(pending))
	}
	if more, _ := s.InsertDeliveries(ctx, liveHolder(t, s, time.Minute), uuid.New(), []NewDelivery{newDelivery(w, "late")}); len(more) != 0 {
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
	jobs, err := s.InsertDeliveries(ctx, liveHolder(t, s, time.Minute), uuid.New(), rows)
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
	holder := liveHolder(t, s, time.Minute)
	go func() {
		jobs, err := s.InsertDeliveries(context.Background(), holder, uuid.New(), []NewDelivery{newDelivery(w, "racing")})
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

// A batch of successes only (one statement, no transaction around it)
// records every attempt and delivery state, resets the failure count of an
// ACTIVE webhook, and leaves a webhook that is no longer ACTIVE as it is.
func TestABatchOfSuccessesRecordsAttemptsAndResetsFailureCounts(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	failing, failed := activeWebhook(t, s, "org-5"), activeWebhook(t, s, "org-5")
	if _, err := s.db.ExecContext(ctx, `UPDATE webhooks SET failure_count = 2 WHERE id = $1`, failing.ID); err != nil {
		t.Fatal(err)
	}
	holder := liveHolder(t, s, time.Minute)
	jobs, err := s.InsertDeliveries(ctx, holder, uuid.New(), []NewDelivery{newDelivery(failing, "a"), newDelivery(failing, "b"), newDelivery(failed, "c")})
	if err != nil || len(jobs) != 3 {
		t.Fatalf("insert: %d jobs, %v", len(jobs), err)
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE webhooks SET status = 'FAILED', failure_count = 3 WHERE id = $1`, failed.ID); err != nil {
		t.Fatal(err)
	}
	var results []Result
	for _, j := range jobs {
		results = append(results, Result{Job: j, Status: DeliverySucceeded,
			Attempt: Attempt{Number: j.Attempt, At: time.Now().UTC(), DurationMs: 3, Outcome: OutcomeSuccess, StatusCode: 204}})
	}
	if disabled, err := s.Complete(ctx, results, 3); err != nil || len(disabled) != 0 {
		t.Fatalf("complete: disabled %+v, %v", disabled, err)
	}
	for _, c := range []struct {
		w     Webhook
		count int
		st    string
	}{{failing, 0, StatusActive}, {failed, 3, StatusFailed}} {
		got, err := s.GetWebhook(ctx, "org-5", c.w.ID)
		if err != nil || got.FailureCount != c.count || got.Status != c.st {
			t.Fatalf("webhook: failureCount %d status %s (%v), want %d %s", got.FailureCount, got.Status, err, c.count, c.st)
		}
	}
	for _, w := range []Webhook{failing, failed} {
		ds, err := s.ListDeliveries(ctx, "org-5", w.ID, 10, nil, DeliveryFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.Status != DeliverySucceeded || logOf(attemptsOf(t, d)) != "1:success" {
				t.Fatalf("delivery %s: %s, log %q", d.EventID, d.Status, logOf(attemptsOf(t, d)))
			}
		}
	}
	var held int
	if err := s.db.GetContext(ctx, &held, `SELECT count(*) FROM webhook_deliveries WHERE holder IS NOT NULL`); err != nil || held != 0 {
		t.Fatalf("%d deliveries still held (%v)", held, err)
	}
}
