package webhookdispatcher_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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

// A deployment upgraded from a version whose consumer read all of
// `events.>` keeps delivering: the consumer is switched to the webhook
// subjects, keeping its position.
func TestAConsumerOfAnEarlierVersionIsTakenOver(t *testing.T) {
	h, rcv, org := restartOnConsumer(t, jetstream.ConsumerConfig{
		Durable: webhookdispatcher.Name, AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "events.>",
		DeliverPolicy: jetstream.DeliverAllPolicy, Description: "as an earlier version made it",
	})
	h.publish(org, "BOOKING_CREATED", map[string]any{"bookingId": "BK-7"})
	testkit.Eventually(t, 10*time.Second, "the delivery after the upgrade", func() bool { return rcv.count() == 1 })
}

// A consumer that cannot be set up (here a consumer of the same name whose
// deliver policy cannot be changed) is tried again until it can, instead of
// leaving the dispatcher running without reading events.
func TestTheEventConsumerIsSetUpAgainUntilItWorks(t *testing.T) {
	h, rcv, org := restartOnConsumer(t, jetstream.ConsumerConfig{
		Durable: webhookdispatcher.Name, AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	h.publish(org, "BOOKING_CREATED", map[string]any{"bookingId": "BK-8"})
	// The operator removes the conflicting consumer; the next try sets it up.
	if err := h.nats.JS.DeleteConsumer(context.Background(), natsx.StreamEvents, webhookdispatcher.Name); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 15*time.Second, "the delivery", func() bool { return rcv.count() == 1 })
}

// restartOnConsumer starts a dispatcher with a webhook for BOOKING_CREATED
// on a receiver, stops it, puts the consumer cfg in place of its own, and
// starts it again.
func restartOnConsumer(t *testing.T, cfg jetstream.ConsumerConfig) (*harness, *receiver, string) {
	t.Helper()
	h := newHarness(t, testConfig(t))
	rcv := newReceiver(t)
	org := testkit.UniqueID("org")
	h.createWebhook(token(t, org, "ADMIN"), rcv.srv.URL, "BOOKING_CREATED")
	h.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.nats.JS.DeleteConsumer(ctx, natsx.StreamEvents, webhookdispatcher.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := h.nats.JS.CreateConsumer(ctx, natsx.StreamEvents, cfg); err != nil {
		t.Fatal(err)
	}
	h.start()
	return h, rcv, org
}
