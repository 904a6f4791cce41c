package ingest

import (
	"database/sql"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/services/notification-api/internal/store"
)

// The one-pass encoding must stay byte for byte what the contract's
// envelope produces, read or unread, with or without data.
func TestNotificationMessageIsTheContractEnvelope(t *testing.T) {
	created := time.Date(2026, 11, 27, 10, 0, 0, 123456000, time.UTC)
	read := created.Add(time.Minute)
	rows := []store.Row{
		{ID: uuid.Must(uuid.NewV7()), UserID: "user 7/é", OrgID: "org-1", EventID: "ev-1", Type: "PAYMENT_FAILED", Priority: "URGENT",
			Title: "Payment <failed>", Message: "line\nbreak & \"quotes\"", Data: json.RawMessage(`{"amount": 12.5, "tags": ["a", "b"]}`), CreatedAt: created},
		{ID: uuid.Must(uuid.NewV7()), UserID: "u", OrgID: "o", EventID: "ev-2", Type: "SYSTEM", Priority: "LOW",
			Title: "t", Message: "m", ReadAt: sql.NullTime{Time: read, Valid: true}, CreatedAt: created},
		{ID: uuid.Must(uuid.NewV7()), UserID: "u", OrgID: "o", EventID: "bad \xff utf-8 \u2028", Type: "SYSTEM", Priority: "LOW",
			Title: "\x00\x1f\x7f", Message: "🚢 \u2029", Data: json.RawMessage("{\n  \"s\" : \"<&> \u2028\", \"n\": [ 1, 2.5e3, null ] }"),
			CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))},
		{ID: uuid.Must(uuid.NewV7()), UserID: "u", OrgID: "o", EventID: "e", Type: "SYSTEM", Priority: "LOW",
			Title: "t", Message: "m", Data: json.RawMessage(`{"plain": "no escaping", "k": {"x": []}}`), CreatedAt: created},
	}
	for _, r := range rows {
		msg, err := NotificationMessage(r)
		if err != nil {
			t.Fatal(err)
		}
		inner, err := json.Marshal(r.JSON())
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(contract.UserMessage{Event: contract.UserEventNotification, Data: inner})
		if err != nil {
			t.Fatal(err)
		}
		if string(msg.Data) != string(want) {
			t.Errorf("body\n got %s\nwant %s", msg.Data, want)
		}
		if msg.Subject != contract.NotifySubject(r.UserID) || msg.Header.Get(nats.MsgIdHdr) != r.ID.String() {
			t.Errorf("subject %q, msg id %q", msg.Subject, msg.Header.Get(nats.MsgIdHdr))
		}
	}
}

// go test -bench NotificationMessage: the cost of one NOTIFY message
// (BENCHMARKS.md, ingest cost).
func BenchmarkNotificationMessage(b *testing.B) {
	r := store.Row{ID: uuid.Must(uuid.NewV7()), UserID: "user-123", OrgID: "org-1", EventID: "3f1c2a9e-1b2c-4d5e-8f90-123456789abc",
		Type: "BOOKING_CREATED", Priority: "MEDIUM", Title: "Booking created", Message: "A new booking has been created.",
		Data: json.RawMessage(`{"bookingId": "BK-12345", "amount": 1250.5}`), CreatedAt: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NotificationMessage(r); err != nil {
			b.Fatal(err)
		}
	}
}
