package notificationapi_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/testkit"
)

func TestEveryDomainTypeProducesTheRowsOfTheTable(t *testing.T) {
	h := start(t)
	want := map[string]struct {
		inApp    string
		priority string
	}{
		"BOOKING_CREATED":        {"BOOKING_CREATED", "MEDIUM"},
		"BOOKING_UPDATED":        {},
		"BOOKING_STATUS_CHANGED": {"BOOKING_STATUS_CHANGED", "MEDIUM"},
		"BOOKING_CANCELLED":      {"BOOKING_STATUS_CHANGED", "HIGH"},
		"RATE_QUOTED":            {},
		"DOCUMENT_UPLOADED":      {"DOCUMENT_UPLOADED", "LOW"},
		"CARRIER_ACCEPTED":       {"CARRIER_ACCEPTED", "HIGH"},
		"CARRIER_REJECTED":       {"CARRIER_REJECTED", "HIGH"},
		"PAYMENT_SUCCESS":        {"PAYMENT_SUCCESS", "MEDIUM"},
		"PAYMENT_FAILED":         {"PAYMENT_FAILED", "URGENT"},
		"SUBSCRIPTION_UPDATED":   {"SUBSCRIPTION_UPDATED", "LOW"},
		"SYSTEM":                 {"SYSTEM", "MEDIUM"},
	}
	if len(want) != len(contract.EventTypes()) {
		t.Fatalf("the test covers %d types, the contract has %d", len(want), len(contract.EventTypes()))
	}
	ids := map[string]string{}
	for typ := range want {
		ev := event(typ, "alice", "bob")
		ids[typ] = ev.Id
		h.publish(ev)
	}
	// Batches are stored by two workers side by side, so no event marks the
	// end: wait until the consumer has acked everything.
	h.waitIdle()
	for typ, w := range want {
		var rows []struct {
			User     string `db:"user_id"`
			Type     string `db:"type"`
			Priority string `db:"priority"`
			Title    string `db:"title"`
		}
		if err := h.db.Select(&rows, `SELECT user_id, type, priority, title FROM notifications WHERE event_id = $1 ORDER BY user_id`, ids[typ]); err != nil {
			t.Fatal(err)
		}
		if w.inApp == "" {
			if len(rows) != 0 {
				t.Errorf("%s: webhook-only type produced %d rows", typ, len(rows))
			}
			continue
		}
		if len(rows) != 2 || rows[0].User != "alice" || rows[1].User != "bob" {
			t.Fatalf("%s: rows %+v, want one for alice and one for bob", typ, rows)
		}
		for _, r := range rows {
			if r.Type != w.inApp || r.Priority != w.priority || r.Title == "" {
				t.Errorf("%s: row %+v, want type %s priority %s and a default title", typ, r, w.inApp, w.priority)
			}
		}
	}
}

func TestOverridesAndDuplicateRecipients(t *testing.T) {
	h := start(t)
	ev := event("BOOKING_CREATED", "carol", "carol")
	ev.Priority, ev.Title, ev.Message = "urgent", "Your booking BK-1", "Ready to ship"
	h.publish(ev)
	testkit.Eventually(t, 10*time.Second, "row stored", func() bool {
		return h.count(`SELECT count(*) FROM notifications WHERE event_id = $1`, ev.Id) > 0
	})
	var r struct {
		Priority string `db:"priority"`
		Title    string `db:"title"`
		Message  string `db:"message"`
		Data     string `db:"data"`
	}
	if err := h.db.Get(&r, `SELECT priority, title, message, data::text AS data FROM notifications WHERE event_id = $1`, ev.Id); err != nil {
		t.Fatal(err)
	}
	if r.Priority != "URGENT" || r.Title != "Your booking BK-1" || r.Message != "Ready to ship" || r.Data != `{"bookingId": "BK-1"}` {
		t.Fatalf("row %+v", r)
	}
	if n := h.count(`SELECT count(*) FROM notifications WHERE event_id = $1`, ev.Id); n != 1 {
		t.Fatalf("a recipient listed twice got %d rows", n)
	}
}

func TestTheSameEventTwiceLeavesOneRowPerRecipientAndIsPublishedOnce(t *testing.T) {
	h := start(t)
	ev := event("PAYMENT_FAILED", "dave", "erin")
	data, err := contract.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	// Two messages with different JetStream ids, so that the stream keeps
	// both and the consumer sees the duplicate.
	h.publishRaw(contract.EventsSubject(ev.Type), "first", data)
	h.publishRaw(contract.EventsSubject(ev.Type), "second", data)
	h.waitIdle()
	if n := h.count(`SELECT count(*) FROM notifications WHERE event_id = $1`, ev.Id); n != 2 {
		t.Fatalf("%d rows, want 2 (one per recipient)", n)
	}
	if n := countEvent(h.notifyMessages("dave"), ev.Id); n != 1 {
		t.Fatalf("dave's notification was published %d times on NOTIFY, want 1", n)
	}
}

// A consumer that stores the rows and dies before publishing and acking:
// the redelivery must not add rows, and must publish the notification.
func TestRedeliveryAfterCrashBetweenCommitAndAck(t *testing.T) {
	n := testkit.StartNATS(t)
	ev := event("CARRIER_ACCEPTED", "frank")
	if _, err := newPublisher(n).Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	dbURL := testkit.Database(t)
	crashAfterCommit(t, n, dbURL)

	// The real service now starts on the same stream and database.
	if got := countEvent(readNotify(t, n, "frank"), ev.Id); got != 0 {
		t.Fatalf("the crashed consumer published %d messages", got)
	}
	h := startOn(t, n, dbURL)
	h.waitIdle()
	if got := countEvent(h.notifyMessages("frank"), ev.Id); got != 1 {
		t.Fatalf("notification published %d times after redelivery, want 1", got)
	}
	if c := h.count(`SELECT count(*) FROM notifications WHERE event_id = $1`, ev.Id); c != 1 {
		t.Fatalf("%d rows after redelivery, want 1", c)
	}
}

func TestPoisonEventsAreDeadLetteredAndTheStreamMovesOn(t *testing.T) {
	h := start(t)
	h.publishRaw("events.BOOKING_CREATED", "bad-json", []byte(`{"id": "x", `))
	h.publishRaw("events.NOPE", "unknown-type", []byte(`{"id":"p2","type":"NOPE","organizationId":"org-1","recipients":["u"]}`))
	h.publishRaw("events.SYSTEM", "no-id", []byte(`{"type":"SYSTEM","organizationId":"org-1","recipients":["u"]}`))
	good := event("SYSTEM", "grace")
	h.publish(good)
	testkit.Eventually(t, 10*time.Second, "good event stored", func() bool {
		return h.count(`SELECT count(*) FROM notifications WHERE event_id = $1`, good.Id) == 1
	})
	ctx := context.Background()
	testkit.Eventually(t, 10*time.Second, "three dead letters", func() bool {
		info, err := h.nats.JS.Stream(ctx, natsx.StreamDeadLetter)
		if err != nil {
			return false
		}
		st, err := info.Info(ctx)
		return err == nil && st.State.Msgs == 3
	})
	stream, err := h.nats.JS.Stream(ctx, natsx.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	// Workers run side by side, so dead letters arrive in any order.
	reasons := map[string]string{} // original subject -> reason
	for seq := uint64(1); seq <= 3; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Header.Get(natsx.HeaderDeadLetterConsumer) != "notification-api" {
			t.Errorf("dead letter %d: consumer header %q", seq, msg.Header.Get(natsx.HeaderDeadLetterConsumer))
		}
		reasons[msg.Header.Get(natsx.HeaderDeadLetterSubject)] = msg.Header.Get(natsx.HeaderDeadLetterReason)
	}
	for subject, want := range map[string]string{
		"events.BOOKING_CREATED": "invalid event: cannot decode JSON",
		"events.NOPE":            `invalid event: unknown type "NOPE"`,
		"events.SYSTEM":          "invalid event: id is required",
	} {
		if !strings.HasPrefix(reasons[subject], want) {
			t.Errorf("dead letter of %s: reason %q, want it to start with %q", subject, reasons[subject], want)
		}
	}
	body := h.do("GET", "/metrics", "", "").Body
	if !containsBytes(body, `notify_ingest_dead_lettered_total{reason="decode"} 1`) ||
		!containsBytes(body, `notify_ingest_dead_lettered_total{reason="unknown_type"} 1`) ||
		!containsBytes(body, `notify_ingest_dead_lettered_total{reason="invalid"} 1`) {
		t.Errorf("metrics do not count the dead letters:\n%s", grepLines(body, "dead_lettered"))
	}
}

// An event with a thousand recipients: its notifications are published in
// chunks (a batch can carry more than the NATS client lets wait for their
// acks at once), each stored and published once, without a retry (waitIdle
// also checks that nothing was redelivered).
func TestAnEventWithAThousandRecipientsIsPublishedInChunksWithoutRetry(t *testing.T) {
	// The test default of a 2 s ack wait is shorter than a thousand
	// publishes under -race on a busy machine; a redelivery would then be
	// the machine, not ingest.
	h := startWith(t, testkit.StartNATS(t), testkit.Database(t), testkit.Logger(), map[string]string{"INGEST_ACK_WAIT": "60s"})
	users := make([]string, contract.MaxRecipients)
	for i := range users {
		users[i] = fmt.Sprintf("fan-%04d", i)
	}
	const events = 1
	for range events {
		h.publish(event("SYSTEM", users...))
	}
	h.waitIdle()
	if n := h.count(`SELECT count(*) FROM notifications WHERE user_id LIKE 'fan-%'`); n != events*len(users) {
		t.Fatalf("%d rows, want %d", n, events*len(users))
	}
	stream, err := h.nats.JS.Stream(context.Background(), natsx.StreamNotify)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(context.Background(), jetstream.WithSubjectFilter("notify.user.*"))
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(events*len(users)) {
		t.Fatalf("%d NOTIFY messages, want %d", info.State.Msgs, events*len(users))
	}
}
