package natsx_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
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
	testkit.WaitFor(t, time.Until(stopped.Add(2*time.Second)), "every event handled once, 2 s after one replica stopped",
		func() error { return seen.check(count) })
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

// On a 3-node cluster, two replicas share a durable, each connected to its
// own node, while events flow steadily; one replica is stopped and started
// again, over and over. A message the server sends to a replica that is
// stopping (its pull request still open on the consumer's leader while its
// subscription goes away) must be handed back, not left to the 30 s ack
// wait: every event is handled, once, within 2 s of the last publish.
func TestRepeatedStopsOnAClusterLeaveNothingToTheAckWait(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster")
	}
	cluster := testkit.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	urls := strings.Split(cluster.URL, ",")
	jsTo := func(url string) jetstream.JetStream {
		nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true))
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
	producer := jsTo(urls[0])
	streams := testkit.StreamsConfig()
	streams.Replicas = 3
	hr := health.New(testkit.Logger(), prometheus.NewRegistry(), health.Remind)
	if err := natsx.EnsureStreams(ctx, producer, streams, hr); err != nil {
		t.Fatal(err)
	}
	seen := &handled{by: map[string][]string{}}
	replica := func(name string, js jetstream.JetStream) *natsx.Consumer {
		return natsx.NewConsumer(js, natsx.ConsumerConfig{
			Stream:   natsx.StreamEvents,
			Consumer: jetstream.ConsumerConfig{Durable: "cycle", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxDeliver: -1},
			Batch:    10, Workers: 2, Pull: 50,
			Health: hr.Condition("consumer:" + name), Log: testkit.Logger(),
		}, func(_ context.Context, b *natsx.Batch) []natsx.Outcome {
			seen.add(name, b)
			return acks(len(b.Msgs))
		})
	}
	steady := replica("steady", jsTo(urls[1]))
	steadyDone := make(chan struct{})
	go func() { steady.Run(ctx); close(steadyDone) }()

	// The cycling replica is connected to the third node.
	cycling := replica("cycling", jsTo(urls[2]))
	published := make(chan int)
	go func() {
		n := 0
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for end := time.Now().Add(6 * time.Second); time.Now().Before(end); n++ {
			<-tick.C
			if _, err := producer.Publish(ctx, "events.SYSTEM", []byte(strconv.Itoa(n))); err != nil {
				t.Error(err)
				break
			}
		}
		published <- n
	}()
	var count int
cycles:
	for {
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { cycling.Run(runCtx); close(done) }()
		select {
		case count = <-published:
			stop()
			<-done
			break cycles
		case <-time.After(400 * time.Millisecond):
		}
		stop()
		<-done
	}
	testkit.WaitFor(t, 2*time.Second, "every event handled once, 2 s after the last publish",
		func() error { return seen.check(count) })
	cancel()
	<-steadyDone
}

// One worker sees every message once, in stream order, across many pull
// requests (each asks for 50), and Run returns once its context ends.
func TestMessagesComeInStreamOrderAcrossPulls(t *testing.T) {
	n := testkit.StartNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const count = 300
	for i := range count {
		if _, err := n.JS.Publish(ctx, "events.SYSTEM", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var got []string
	hr := health.New(testkit.Logger(), prometheus.NewRegistry(), health.Remind)
	c := natsx.NewConsumer(n.JS, natsx.ConsumerConfig{
		Stream:   natsx.StreamEvents,
		Consumer: jetstream.ConsumerConfig{Durable: "order", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second},
		Batch:    7, Workers: 1, Pull: 50,
		Health: hr.Condition("consumer"), Log: testkit.Logger(),
	}, func(_ context.Context, b *natsx.Batch) []natsx.Outcome {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range b.Msgs {
			got = append(got, string(m.Data()))
		}
		return acks(len(b.Msgs))
	})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { c.Run(runCtx); close(done) }()
	testkit.Eventually(t, 10*time.Second, "every message handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= count
	})
	stop()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("Run did not return after its context ended")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != count {
		t.Fatalf("%d messages handled, want %d", len(got), count)
	}
	for i, p := range got {
		if p != strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, p)
		}
	}
}
