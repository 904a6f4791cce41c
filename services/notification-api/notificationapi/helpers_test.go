package notificationapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/health"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/postgres"
	"github.com/xpeditis/notify/pkg/publisher"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/notification-api/internal/ingest"
	"github.com/xpeditis/notify/services/notification-api/internal/store"
	"github.com/xpeditis/notify/services/notification-api/migrations"
)

// testAckWait is short so that redeliveries come quickly; the crashing
// consumer and the service use the same value, as replicas of one
// deployment would.
const testAckWait = 2 * time.Second

// ingestHealth is a consumer's conditions for tests that run ingest alone.
func ingestHealth() ingest.Health {
	hr := health.New(testkit.Logger(), prometheus.NewRegistry(), health.Remind)
	return ingest.Health{Consumer: hr.Condition("consumer"), Postgres: hr.Condition("postgres"), NATS: hr.Condition("nats")}
}

func newPublisher(n *testkit.NATS) *publisher.Publisher { return publisher.New(n.JS) }

// crashingStore commits the rows, then fails as a process killed right
// after the commit would: nothing is published and nothing is acked.
type crashingStore struct {
	*store.Store
	crashed chan struct{}
}

func (s crashingStore) InsertBatch(ctx context.Context, rows []store.Row) ([]store.Row, error) {
	if _, err := s.Store.InsertBatch(ctx, rows); err != nil {
		return nil, err
	}
	select {
	case s.crashed <- struct{}{}:
	default:
	}
	return nil, errors.New("crash after commit")
}

// crashAfterCommit runs the ingest consumer until it has committed one
// batch without publishing or acking it, then stops it.
func crashAfterCommit(t testing.TB, n *testkit.NATS, dbURL string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, err := postgres.Open(ctx, dbURL, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := postgres.Migrate(ctx, db, "notification-api", migrations.FS); err != nil {
		t.Fatal(err)
	}
	st := crashingStore{Store: store.New(db), crashed: make(chan struct{}, 1)}
	c := ingest.New(n.JS, st, ingest.Config{
		Durable: "notification-api", Batch: 10, MaxWait: 5 * time.Millisecond, AckWait: testAckWait, Workers: 1,
	}, ingestHealth(), testkit.Logger(), prometheus.NewRegistry(), noop.NewTracerProvider().Tracer(""))
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	select {
	case <-st.crashed:
	case <-time.After(10 * time.Second):
		t.Fatal("the consumer never stored the batch")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// waitIdle waits until the ingest consumer has acked everything on EVENTS.
func (h *harness) waitIdle() {
	h.t.Helper()
	var last string
	defer func() {
		if h.t.Failed() {
			h.t.Logf("last consumer state: %s", last)
		}
	}()
	// The consumer's counts alone can read idle too early: the server
	// tells a consumer of a stored message asynchronously (NumPending may
	// not count it yet right after the publish ack), and a message handed
	// back with a delay is in none of the counts until it is redelivered.
	// So idle also means acknowledged up to the last message stored now.
	stream, err := h.nats.JS.Stream(context.Background(), natsx.StreamEvents)
	if err != nil {
		h.t.Fatal(err)
	}
	sinfo, err := stream.Info(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	lastSeq := sinfo.State.LastSeq
	testkit.Eventually(h.t, 15*time.Second, "ingest consumer idle", func() bool {
		cons, err := h.nats.JS.Consumer(context.Background(), natsx.StreamEvents, "notification-api")
		if err != nil {
			return false
		}
		info, err := cons.Info(context.Background())
		if err != nil {
			return false
		}
		last = fmt.Sprintf("%+v", *info)
		return info.AckFloor.Stream >= lastSeq && info.NumAckPending == 0 && info.NumPending == 0 && info.NumRedelivered == 0
	})
}

// countEvent counts the "notification" messages of an event.
func countEvent(msgs []contract.UserMessage, eventID string) int {
	n := 0
	for _, m := range msgs {
		if m.Event != contract.UserEventNotification {
			continue
		}
		var notif contract.Notification
		if json.Unmarshal(m.Data, &notif) == nil && notif.EventID == eventID {
			n++
		}
	}
	return n
}

func containsBytes(b []byte, s string) bool { return bytes.Contains(b, []byte(s)) }

func grepLines(b []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func openDB(t testing.TB, dbURL string) *sqlx.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), dbURL, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func clusterJS(t testing.TB, urls string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(urls)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
