package notificationapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/postgres"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/notification-api/internal/ingest"
	"github.com/xpeditis/notify/services/notification-api/internal/store"
	"github.com/xpeditis/notify/services/notification-api/migrations"
)

// Batches are stored by several workers at once, but a user's live stream
// (NOTIFY, which the gateway pushes and replays) gets the notifications in
// the order of their events: a backlog of 400 events of one user, taken in
// batches of 5 by 4 workers, comes out in the order it went in.
func TestNotificationsReachTheLiveStreamInEventOrder(t *testing.T) {
	n := testkit.StartNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub := newPublisher(n)
	var want []string
	for range 400 {
		ev := event("SYSTEM", "olga")
		if _, err := pub.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
		want = append(want, ev.Id)
	}
	db, err := postgres.Open(ctx, testkit.Database(t), 8)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := postgres.Migrate(ctx, db, "notification-api", migrations.FS); err != nil {
		t.Fatal(err)
	}
	c := ingest.New(n.JS, store.New(db), ingest.Config{
		Durable: "notification-api", Batch: 5, MaxWait: time.Millisecond, AckWait: 30 * time.Second, Workers: 4,
	}, ingestHealth(), testkit.Logger(), prometheus.NewRegistry(), noop.NewTracerProvider().Tracer(""))
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	var msgs []contract.UserMessage
	testkit.Eventually(t, 20*time.Second, "400 notifications on NOTIFY", func() bool {
		msgs = readNotify(t, n, "olga")
		return len(msgs) == len(want)
	})
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		var notif contract.Notification
		if err := json.Unmarshal(m.Data, &notif); err != nil {
			t.Fatal(err)
		}
		if notif.EventID != want[i] {
			t.Fatalf("notification %d on NOTIFY is of event %s, want %s (the %d-th published)", i, notif.EventID, want[i], i)
		}
	}
}

// A consumer that cannot be set up (here one of the same name whose deliver
// policy cannot be changed) is tried again until it can: ingest does not
// stop for good while the API keeps serving, and meanwhile the service is
// not ready and says why.
func TestTheIngestConsumerIsSetUpAgainUntilItWorks(t *testing.T) {
	n := testkit.StartNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := n.JS.CreateConsumer(ctx, natsx.StreamEvents, jetstream.ConsumerConfig{
		Durable: "notification-api", AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverNewPolicy,
	}); err != nil {
		t.Fatal(err)
	}
	h := launch(t, n, testkit.Database(t))
	testkit.Eventually(t, 10*time.Second, "/readyz naming the consumer", func() bool {
		code, body := readyz(h.base)
		return code == http.StatusServiceUnavailable && strings.Contains(body, `"consumer:notification-api":"consumer notification-api:`)
	})
	ev := event("SYSTEM", "petra")
	h.publish(ev)
	if err := n.JS.DeleteConsumer(ctx, natsx.StreamEvents, "notification-api"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 15*time.Second, "the notification stored", func() bool {
		return h.count(`SELECT count(*) FROM notifications WHERE event_id = $1`, ev.Id) == 1
	})
	waitReady(t, h.base, 10*time.Second)
}

// A consumer deleted by an operator under a running service is noticed and
// set up again within 30 s (here within the 5 s check and its restart).
func TestAConsumerDeletedUnderARunningServiceIsSetUpAgain(t *testing.T) {
	h := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.nats.JS.DeleteConsumer(ctx, natsx.StreamEvents, "notification-api"); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	ev := event("SYSTEM", "quentin")
	h.publish(ev)
	testkit.Eventually(t, 30*time.Second, "the event stored after the deletion", func() bool {
		return h.count(`SELECT count(*) FROM notifications WHERE event_id = $1`, ev.Id) == 1
	})
	waitReady(t, h.base, 5*time.Second)
	t.Logf("set up again and the event stored %s after the deletion", time.Since(deleted).Round(time.Millisecond))
}
