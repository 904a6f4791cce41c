package natsx_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xpeditis/notify/pkg/health"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/testkit"
)

// The consumer's lag as the server counts it (not yet delivered plus not
// yet acked) is exported under its durable name, and falls to 0 once every
// message is acked; deleting the consumer counts one restart. Two
// consumers of one process share the registry.
func TestAConsumerExportsItsLagAndRestarts(t *testing.T) {
	n := testkit.StartNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const count = 10
	for i := range count {
		if _, err := n.JS.Publish(ctx, "events.SYSTEM", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	hr := health.New(testkit.Logger(), prometheus.NewRegistry(), health.Remind)
	release := make(chan struct{})
	build := func(durable string) *natsx.Consumer {
		return natsx.NewConsumer(n.JS, natsx.ConsumerConfig{
			Stream:   natsx.StreamEvents,
			Consumer: jetstream.ConsumerConfig{Durable: durable, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxDeliver: -1},
			Batch:    1, Workers: 1, Pull: 2, Check: 20 * time.Millisecond,
			Health: hr.Condition("consumer:" + durable), Log: testkit.Logger(), Metrics: reg,
		}, func(ctx context.Context, b *natsx.Batch) []natsx.Outcome {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return acks(len(b.Msgs))
		})
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	for _, d := range []string{"lagging", "other"} {
		c := build(d)
		go c.Run(runCtx)
	}
	lag := func(durable string) float64 {
		pending := value(t, reg, "notify_consumer_pending_messages", durable)
		return pending + value(t, reg, "notify_consumer_ack_pending_messages", durable)
	}
	testkit.WaitFor(t, 10*time.Second, "the lag of a blocked consumer", func() error {
		if got := lag("lagging"); got != count {
			return fmt.Errorf("lag %v, want %d", got, count)
		}
		return nil
	})
	close(release)
	testkit.WaitFor(t, 10*time.Second, "no lag once all is acked", func() error {
		if got := lag("lagging"); got != 0 {
			return fmt.Errorf("lag %v, want 0", got)
		}
		return nil
	})
	if err := n.JS.DeleteConsumer(ctx, natsx.StreamEvents, "lagging"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "a restart counted", func() error {
		if got := value(t, reg, "notify_consumer_restarts_total", "lagging"); got != 1 {
			return fmt.Errorf("restarts %v, want 1", got)
		}
		return nil
	})
	if got := value(t, reg, "notify_consumer_restarts_total", "other"); got != 0 {
		t.Errorf("the other consumer counts %v restarts", got)
	}
}

// value returns the value of the series of metric name with
// consumer=durable.
func value(t *testing.T, reg *prometheus.Registry, name, durable string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "consumer" && l.GetValue() == durable {
					return m.GetGauge().GetValue() + m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{consumer=%q}", name, durable)
	return 0
}
