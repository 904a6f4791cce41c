package webhookdispatcher_test

import (
	"context"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/webhook-dispatcher/webhookdispatcher"
)

// Events of types without a webhook event (SYSTEM, DOCUMENT_*, …) are not
// even sent to the dispatcher's consumer: they would be decoded and acked
// for nothing, on every replica.
func TestTheDispatcherIsNotSentEventsWithoutAWebhookEvent(t *testing.T) {
	h := newHarness(t, testConfig(t))
	rcv := newReceiver(t)
	org := testkit.UniqueID("org")
	h.createWebhook(token(t, org, "ADMIN"), rcv.srv.URL, "BOOKING_CREATED")
	for range 5 {
		h.publish(org, "SYSTEM", map[string]any{"note": "maintenance"})
	}
	h.publish(org, "BOOKING_CREATED", map[string]any{"bookingId": "BK-1"})
	testkit.Eventually(t, 5*time.Second, "the booking's delivery", func() bool { return rcv.count() == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := h.nats.JS.Consumer(ctx, natsx.StreamEvents, webhookdispatcher.Name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Delivered.Consumer != 1 || info.NumPending != 0 {
		t.Fatalf("the consumer was sent %d events (%d pending), want only the booking's", info.Delivered.Consumer, info.NumPending)
	}
}
