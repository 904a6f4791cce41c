package suite

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/publisher"
)

// sent is one event the producer tried to publish.
type sent struct {
	id     string
	user   string
	phase  int
	at     time.Time // publish started
	acked  bool
	ackAt  time.Time
	failed string // why it was not acked
}

// producer publishes BOOKING_CREATED events at a steady rate with
// pkg/publisher, each to one known user, and records which were acked. It
// does not retry: an event whose publish fails is reported, not expected.
type producer struct {
	pub   *publisher.Publisher
	run   string
	org   string
	users []string
	phase atomic.Int64

	mu     sync.Mutex
	events []*sent
	behind int // ticks skipped because every worker was busy
}

// publishTimeout bounds one publish: past it the event counts as failed.
const publishTimeout = 5 * time.Second

func newProducer(js jetstream.JetStream, run, org string, users []string) *producer {
	return &producer{pub: publisher.New(js), run: run, org: org, users: users}
}

// run publishes rate events per second until ctx ends, with workers
// publishing concurrently so that one slow ack does not stall the rate.
func (p *producer) runAt(ctx context.Context, rate int) {
	const workers = 32
	jobs := make(chan *sent, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ev := range jobs {
				p.publish(ev)
			}
		})
	}
	interval := time.Second / time.Duration(rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	seq := 0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
		}
		phase := int(p.phase.Load())
		ev := &sent{id: fmt.Sprintf("chaos-%s-p%02d-%07d", p.run, phase, seq), user: p.users[seq%len(p.users)], phase: phase, at: time.Now()}
		select {
		case jobs <- ev:
			seq++
		default:
			p.mu.Lock()
			p.behind++
			p.mu.Unlock()
		}
	}
	close(jobs)
	wg.Wait()
}

func (p *producer) publish(ev *sent) {
	p.mu.Lock()
	p.events = append(p.events, ev)
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	_, err := p.pub.Publish(ctx, &contract.Event{
		Id: ev.id, Type: "BOOKING_CREATED", OccurredAt: timestamppb.New(ev.at), OrganizationId: p.org,
		Recipients: []string{ev.user},
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		ev.failed = err.Error()
		return
	}
	ev.acked, ev.ackAt = true, time.Now()
}

// snapshot copies the events so far.
func (p *producer) snapshot() []sent {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]sent, len(p.events))
	for i, ev := range p.events {
		out[i] = *ev
	}
	return out
}
