package suite

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
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
	behind int // events skipped: the producer was more than a second behind its rate
}

// publishTimeout bounds one publish: past it the event counts as failed.
const publishTimeout = 5 * time.Second

// maxPending bounds the publishes waiting for their ack.
const maxPending = 4096

// newProducer publishes on its own JetStream context, whose asynchronous
// publishes time out after publishTimeout.
func newProducer(nc *nats.Conn, run, org string, users []string) (*producer, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(maxPending), jetstream.WithPublishAsyncTimeout(publishTimeout))
	if err != nil {
		return nil, err
	}
	return &producer{pub: publisher.New(js), run: run, org: org, users: users}, nil
}

// runAt publishes rate events per second until ctx ends, asynchronously
// so that slow acks do not lower the rate, then waits for the last acks.
// Each tick publishes what is due since the start, so that a harness
// starved of CPU keeps the rate; past a second of lag (publishing blocked
// on maxPending outstanding acks) the excess is skipped and counted.
func (p *producer) runAt(ctx context.Context, rate int) {
	var wg sync.WaitGroup
	defer wg.Wait()
	interval := time.Second / time.Duration(rate)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	began := time.Now()
	for due, seq := 0, 0; ; {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		due = int(time.Since(began) / interval)
		if lag := due - seq; lag > rate {
			p.mu.Lock()
			p.behind += lag - rate
			p.mu.Unlock()
			seq += lag - rate
		}
		for ; seq < due && ctx.Err() == nil; seq++ {
			p.publishOne(&wg, seq)
		}
	}
}

// publishOne publishes event number seq and records its ack on its own
// goroutine.
func (p *producer) publishOne(wg *sync.WaitGroup, seq int) {
	phase := int(p.phase.Load())
	ev := &sent{id: fmt.Sprintf("chaos-%s-p%02d-%07d", p.run, phase, seq), user: p.users[seq%len(p.users)], phase: phase, at: time.Now()}
	p.mu.Lock()
	p.events = append(p.events, ev)
	p.mu.Unlock()
	// Blocks while maxPending acks are outstanding, errors after the
	// stall wait.
	f, err := p.pub.PublishAsync(&contract.Event{
		Id: ev.id, Type: "BOOKING_CREATED", OccurredAt: timestamppb.New(ev.at), OrganizationId: p.org,
		Recipients: []string{ev.user},
	})
	if err != nil {
		p.settle(ev, err)
		return
	}
	wg.Go(func() {
		select {
		case <-f.Ok():
			p.settle(ev, nil)
		case err := <-f.Err():
			p.settle(ev, err)
		}
	})
}

func (p *producer) settle(ev *sent, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		ev.failed = err.Error()
		return
	}
	ev.acked, ev.ackAt = true, time.Now()
}

func (p *producer) behindBy() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.behind
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
