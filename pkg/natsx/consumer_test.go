package natsx_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xpeditis/notify/pkg/backoff"
	"github.com/xpeditis/notify/pkg/health"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/testkit"
)

// handled records which instance handled (and so acked) each message.
type handled struct {
	mu sync.Mutex
	by map[string][]string // payload -> instances
}

func (h *handled) add(instance string, b *natsx.Batch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range b.Msgs {
		h.by[string(m.Data())] = append(h.by[string(m.Data())], instance)
	}
}

func (h *handled) check(count int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.by) != count {
		return fmt.Errorf("%d of %d messages handled", len(h.by), count)
	}
	for payload, who := range h.by {
		if len(who) != 1 {
			return fmt.Errorf("message %s handled %d times, by %v", payload, len(who), who)
		}
	}
	return nil
}

func testConsumer(n *testkit.NATS, durable string, batch int, handle natsx.Handler) *natsx.Consumer {
	hr := health.New(testkit.Logger(), prometheus.NewRegistry(), health.Remind)
	return natsx.NewConsumer(n.JS, natsx.ConsumerConfig{
		Stream:   natsx.StreamEvents,
		Consumer: jetstream.ConsumerConfig{Durable: durable, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxDeliver: -1},
		Batch:    batch, Workers: 2, Pull: 50,
		Health: hr.Condition("consumer:" + durable), Log: testkit.Logger(),
	}, handle)
}

// Two replicas share a durable; one is stopped while events flow and while
// it holds fetched events it has not started. It finishes and acks the
// batches in hand and hands the rest back, so the other replica handles
// every event within 2 s of the stop (not after the 30 s ack wait), and no
// event is handled twice.
func TestAStoppedReplicaHandsBackWhatItHasNotStarted(t *testing.T) {
	n := testkit.StartNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const count = 600
	seen := &handled{by: map[string][]string{}}
	slowStarted := make(chan struct{}, 1)
	slow := testConsumer(n, "drain", 10, func(_ context.Context, b *natsx.Batch) []natsx.Outcome {
		select {
		case slowStarted <- struct{}{}:
		default:
		}
		time.Sleep(200 * time.Millisecond) // a slow insert: its buffer fills meanwhile
		seen.add("slow", b)
		return acks(len(b.Msgs))
	})
	fast := testConsumer(n, "drain", 10, func(_ context.Context, b *natsx.Batch) []natsx.Outcome {
		seen.add("fast", b)
		return acks(len(b.Msgs))
	})
	slowCtx, stopSlow := context.WithCancel(ctx)
	slowDone := make(chan struct{})
	go func() { slow.Run(slowCtx); close(slowDone) }()
	fastDone := make(chan struct{})
	go func() { fast.Run(ctx); close(fastDone) }()

	for i := range count {
		if _, err := n.JS.Publish(ctx, "events.SYSTEM", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		if i == count/2 {
			<-slowStarted
		}
	}
	stopSlow()
	stopped := time.Now()
	<-slowDone
	deadline := stopped.Add(2 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = seen.check(count); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("2 s after one replica stopped: %v", err)
	}
	cancel()
	<-fastDone
	info, err := n.JS.Consumer(context.Background(), natsx.StreamEvents, "drain")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := info.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ci.NumAckPending != 0 || ci.NumPending != 0 {
		t.Fatalf("left on the consumer: %d pending acks, %d undelivered", ci.NumAckPending, ci.NumPending)
	}
}

func acks(n int) []natsx.Outcome {
	out := make([]natsx.Outcome, n)
	for i := range out {
		out[i] = natsx.Ack()
	}
	return out
}

// Each outcome gets its answer: an ack is never redelivered, a retry comes
// back after the backoff, poison is copied to DEADLETTER once and counted
// once, and a batch without an outcome for a message retries it.
func TestOutcomesBecomeTheirJetStreamReplies(t *testing.T) {
	n := testkit.StartNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, p := range []string{"ack", "retry", "poison", "forgotten"} {
		if _, err := n.JS.Publish(ctx, "events.SYSTEM", []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	deliveries := map[string]int{}
	deadLettered := 0
	hr := health.New(testkit.Logger(), prometheus.NewRegistry(), health.Remind)
	c := natsx.NewConsumer(n.JS, natsx.ConsumerConfig{
		Stream:   natsx.StreamEvents,
		Consumer: jetstream.ConsumerConfig{Durable: "outcomes", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxDeliver: -1},
		Batch:    1, Workers: 1,
		Retry:  backoff.Policy{Base: 300 * time.Millisecond, Max: time.Second},
		Health: hr.Condition("consumer"), Log: testkit.Logger(),
		DeadLettered: func(error) { mu.Lock(); deadLettered++; mu.Unlock() },
	}, func(_ context.Context, b *natsx.Batch) []natsx.Outcome {
		p := string(b.Msgs[0].Data())
		mu.Lock()
		deliveries[p]++
		n := deliveries[p]
		mu.Unlock()
		switch {
		case p == "ack":
			return []natsx.Outcome{natsx.Ack()}
		case p == "poison":
			return []natsx.Outcome{natsx.Poison(errors.New("cannot decode"))}
		case n < 3:
			if p == "forgotten" {
				return nil
			}
			return []natsx.Outcome{natsx.Retry(errors.New("database down"))}
		default:
			return []natsx.Outcome{natsx.Ack()}
		}
	})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { c.Run(runCtx); close(done) }()
	testkit.Eventually(t, 10*time.Second, "retried messages acked on their third delivery", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return deliveries["retry"] == 3 && deliveries["forgotten"] == 3
	})
	stop()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if deliveries["ack"] != 1 || deliveries["poison"] != 1 || deadLettered != 1 {
		t.Fatalf("deliveries %v, dead letters counted %d", deliveries, deadLettered)
	}
	stream, err := n.JS.Stream(ctx, natsx.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := stream.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Fatalf("DEADLETTER: %+v, %v", info.State, err)
	}
}
