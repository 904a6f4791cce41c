package natsx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xpeditis/notify/pkg/backoff"
	"github.com/xpeditis/notify/pkg/batch"
	"github.com/xpeditis/notify/pkg/health"
)

// Outcome is what a handler decided for one message; Reply turns it into
// the JetStream answer.
type Outcome struct {
	verdict verdict
	cause   error
}

type verdict uint8

const (
	verdictRetry verdict = iota // the zero Outcome: a message left without a decision comes back
	verdictAck
	verdictDeadLetter
)

// Ack: the message's effect is durable.
func Ack() Outcome { return Outcome{verdict: verdictAck} }

// Retry: a transient failure (a dependency down); the message comes back
// after a delay growing with its deliveries (ConsumerConfig.Retry).
func Retry(cause error) Outcome { return Outcome{verdict: verdictRetry, cause: cause} }

// Poison: the message can never be handled; it is dead-lettered (copied
// with the cause as its reason to the DEADLETTER stream) and the stream
// moves on.
func Poison(cause error) Outcome { return Outcome{verdict: verdictDeadLetter, cause: cause} }

// Handler handles one batch and returns one outcome per message, in the
// batch's order (a missing outcome is a Retry). Its context is not
// cancelled at shutdown: what a handler has started, it finishes.
type Handler func(ctx context.Context, b *Batch) []Outcome

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	Stream   string
	Consumer jetstream.ConsumerConfig // Durable names it; replicas share it
	Batch    int                      // most messages per batch
	MaxWait  time.Duration            // how long a batch waits for more after its first; 0: it takes what has arrived
	Workers  int                      // batches handled at once
	Pull     int                      // most messages one pull request asks for (and so buffered from the server)
	Retry    backoff.Policy           // redelivery delays of Retry outcomes
	Check    time.Duration            // how often the consumer is checked on the server (deleted by an operator, …); 5 s if 0
	// Health is the consumer's condition: not met while it is not set up
	// or not reachable.
	Health *health.Condition
	// DeadLettered hears of each event newly set aside, with its cause
	// (metrics); a redelivery of one already set aside is not told again.
	DeadLettered func(cause error)
	Log          *slog.Logger
}

// Consumer is the one event-consumer skeleton: it sets its durable
// consumer up (again, whenever it fails or is deleted), forms batches from
// the feed in stream order, hands them to Workers handlers, and turns
// their outcomes into acks, delayed naks and dead letters. On shutdown it
// stops fetching, lets the batches in hand finish and be answered, and
// hands back at once (a Nak without delay) every message fetched but not
// started, so that another replica takes it without waiting for the ack
// deadline.
type Consumer struct {
	js        jetstream.JetStream
	cfg       ConsumerConfig
	handle    Handler
	quiet     chan struct{} // closed once no handler runs again
	quietOnce sync.Once
}

// restart is the pause before a consumer that stopped is set up again.
var restart = backoff.Policy{Base: time.Second, Max: 30 * time.Second, Jitter: 0.2}

// NewConsumer returns a consumer; Run runs it.
func NewConsumer(js jetstream.JetStream, cfg ConsumerConfig, handle Handler) *Consumer {
	cfg.Workers = max(cfg.Workers, 1)
	cfg.Batch = max(cfg.Batch, 1)
	if cfg.Pull < cfg.Batch {
		cfg.Pull = 2 * cfg.Batch * cfg.Workers
	}
	if cfg.Check <= 0 {
		cfg.Check = 5 * time.Second
	}
	if cfg.Retry.Base <= 0 {
		cfg.Retry = backoff.Policy{Base: time.Second, Max: time.Minute, Jitter: 0.1}
	}
	return &Consumer{js: js, cfg: cfg, handle: handle, quiet: make(chan struct{})}
}

// Quiet is closed once Run's context has ended and the last handler has
// returned: what the handlers did is done, though Run may still be handing
// back what its last pull request brings (up to pullExpiry). A service
// that drains more than its consumer (the dispatcher's queued deliveries)
// starts that at Quiet rather than when Run returns.
func (c *Consumer) Quiet() <-chan struct{} { return c.quiet }

func (c *Consumer) beQuiet() { c.quietOnce.Do(func() { close(c.quiet) }) }

// Run consumes until ctx ends, then drains (see Consumer) and returns. A
// consumer that cannot be set up, or stops, is set up again after a pause
// growing from 1 s to 30 s; its condition says why meanwhile.
func (c *Consumer) Run(ctx context.Context) {
	defer c.beQuiet()
	for attempt := 1; ; attempt++ {
		started, err := c.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if started {
			attempt = 1
		}
		c.cfg.Health.Fail(err)
		t := time.NewTimer(restart.Delay(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// runOnce sets the consumer up and consumes until ctx ends or the consumer
// stops; it reports whether the consumer was set up.
func (c *Consumer) runOnce(ctx context.Context) (bool, error) {
	setup, cancel := context.WithTimeout(ctx, setupAttempt)
	cons, err := c.js.CreateOrUpdateConsumer(setup, c.cfg.Stream, c.cfg.Consumer)
	cancel()
	if err != nil {
		return false, fmt.Errorf("consumer %s: %w", c.cfg.Consumer.Durable, err)
	}
	c.cfg.Health.OK()
	// A deleted consumer stops the pulls (watch says so on stopped).
	stopped := make(chan error, 1)
	stopPull := make(chan struct{})
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go c.watch(watchCtx, cons, stopPull, stopped)

	msgs := make(chan jetstream.Msg, c.cfg.Batch*c.cfg.Workers)
	pulled := make(chan error, 1)
	go func() { pulled <- c.pull(ctx, cons, stopPull, msgs) }()
	free := make(chan struct{}, c.cfg.Workers)
	batches := make(chan *Batch, c.cfg.Workers)
	go c.form(ctx, msgs, free, batches)
	var wg sync.WaitGroup
	for range c.cfg.Workers {
		wg.Go(func() { c.work(context.WithoutCancel(ctx), free, batches) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		c.beQuiet()
	}
	err = <-pulled
	select {
	case err := <-stopped:
		return true, err
	default:
	}
	switch {
	case err != nil:
		return true, fmt.Errorf("consumer %s: %w", c.cfg.Consumer.Durable, err)
	case ctx.Err() == nil:
		return true, fmt.Errorf("consumer %s: pulling stopped", c.cfg.Consumer.Durable)
	}
	return true, nil
}

// pullExpiry is how long one pull request waits on the server for
// messages; a stopping consumer reads its last request to the end, so its
// shutdown takes up to this much longer.
const pullExpiry = time.Second

// pull is the only reader of the consumer's messages: one pull request of
// up to Pull messages at a time, each read to its end, every message passed
// to out in stream order, until ctx ends or stop is closed; then it closes
// out. A request is never abandoned while the server may still answer it.
// Abandoning one (unsubscribing its inbox, as an iterator's Drain does)
// loses what the server sends meanwhile (on a cluster, until the
// unsubscribe reaches the consumer's leader), and those messages came back
// only after the ack wait. Once ctx ends it asks for no more and hands back
// at once (a Nak) whatever the last request still brings, so that another
// replica takes it.
func (c *Consumer) pull(ctx context.Context, cons jetstream.Consumer, stop <-chan struct{}, out chan<- jetstream.Msg) error {
	defer close(out)
	pause := backoff.Policy{Base: 50 * time.Millisecond, Max: pullExpiry, Jitter: 0.2}
	for failures := 0; ; {
		select {
		case <-ctx.Done():
			return nil
		case <-stop:
			return nil
		default:
		}
		batch, err := cons.Fetch(c.cfg.Pull, jetstream.FetchMaxWait(pullExpiry))
		if err != nil {
			return fmt.Errorf("pull: %w", err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			select {
			case <-ctx.Done():
				_ = msg.Nak()
				continue
			default:
			}
			select {
			case out <- msg:
			case <-ctx.Done():
				_ = msg.Nak()
			}
		}
		switch err := batch.Error(); {
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
			return fmt.Errorf("pull: %w", err)
		case err != nil && n == 0:
			// A request refused at once (too many waiting, a leader
			// change): pause rather than spin.
			failures++
			c.cfg.Log.Debug("pull request failed", "consumer", c.cfg.Consumer.Durable, "err", err)
			t := time.NewTimer(pause.Delay(failures))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			case <-stop:
				t.Stop()
			}
		default:
			failures = 0
		}
	}
}

// watch checks the consumer on the server every Check: one deleted by an
// operator (whose iterator may not hear of it) is stopped, so that Run sets
// it up again; the condition follows what the server answers.
func (c *Consumer) watch(ctx context.Context, cons jetstream.Consumer, stopPull chan<- struct{}, stopped chan<- error) {
	t := time.NewTicker(c.cfg.Check)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ictx, cancel := context.WithTimeout(ctx, c.cfg.Check)
		_, err := cons.Info(ictx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			stopped <- fmt.Errorf("consumer %s was deleted", c.cfg.Consumer.Durable)
			close(stopPull)
			return
		default:
			c.cfg.Health.Report(err)
		}
	}
}

// work says it is free, handles the batch it gets, and again, until the
// batches end.
func (c *Consumer) work(ctx context.Context, free chan<- struct{}, batches <-chan *Batch) {
	for {
		free <- struct{}{} // never blocks: room for one token per worker
		b, ok := <-batches
		if !ok {
			return
		}
		outcomes := c.handle(ctx, b)
		b.passTurn()
		for i, msg := range b.Msgs {
			var o Outcome
			if i < len(outcomes) {
				o = outcomes[i]
			}
			c.Reply(ctx, msg, o)
		}
	}
}

// form cuts the messages into batches, in order, each when a worker is free
// for it, and closes out once msgs is closed and drained. Once ctx ends it
// forms no more and hands back what it holds.
func (c *Consumer) form(ctx context.Context, msgs <-chan jetstream.Msg, free <-chan struct{}, out chan<- *Batch) {
	// The workers are let go first: handing back waits for the last pull
	// request to end.
	defer handBack(msgs)
	defer close(out)
	order := newTurns()
	var seq uint64
	for {
		select {
		case <-free:
		case <-ctx.Done():
			return
		}
		msgs, open := c.nextBatch(ctx, msgs)
		if ctx.Err() != nil {
			for _, m := range msgs {
				_ = m.Nak()
			}
			return
		}
		if len(msgs) > 0 {
			out <- &Batch{Msgs: msgs, seq: seq, turns: order}
			seq++
		}
		if !open {
			return
		}
	}
}

// handBack naks, without delay, every message left in msgs until it is
// closed: fetched, never started, free for another replica at once.
func handBack(msgs <-chan jetstream.Msg) {
	for m := range msgs {
		_ = m.Nak()
	}
}

// nextBatch blocks for one message, then takes what arrives within MaxWait,
// up to Batch (batch.Next). It reports false once msgs is closed.
func (c *Consumer) nextBatch(ctx context.Context, msgs <-chan jetstream.Msg) ([]jetstream.Msg, bool) {
	return batch.Next(ctx, msgs, nil, c.cfg.Batch, c.cfg.MaxWait)
}

// Reply is the one place a handler's outcome becomes the JetStream answer:
// an ack; a nak delayed by the retry backoff of the message's deliveries;
// or a copy to DEADLETTER, then a term (a copy that fails is retried
// instead, so that nothing is lost).
func (c *Consumer) Reply(ctx context.Context, msg jetstream.Msg, o Outcome) {
	switch o.verdict {
	case verdictAck:
		if err := msg.Ack(); err != nil && !errors.Is(err, nats.ErrMsgAlreadyAckd) {
			c.cfg.Log.Debug("ack failed; the event comes back and its redelivery adds nothing", "subject", msg.Subject(), "err", err)
		}
	case verdictDeadLetter:
		fresh, err := DeadLetter(ctx, c.js, c.cfg.Consumer.Durable, msg, o.cause.Error())
		if err != nil {
			c.cfg.Health.Fail(err)
			c.nakLater(msg)
			return
		}
		if fresh {
			c.cfg.Log.Warn("event dead-lettered", "consumer", c.cfg.Consumer.Durable, "subject", msg.Subject(), "reason", o.cause.Error())
			if c.cfg.DeadLettered != nil {
				c.cfg.DeadLettered(o.cause)
			}
		}
	default:
		c.nakLater(msg)
	}
}

func (c *Consumer) nakLater(msg jetstream.Msg) {
	n := 1
	if md, err := msg.Metadata(); err == nil {
		n = int(min(md.NumDelivered, 64))
	}
	if err := msg.NakWithDelay(c.cfg.Retry.Delay(n)); err != nil {
		c.cfg.Log.Debug("nak failed; the event comes back after the ack wait", "subject", msg.Subject(), "err", err)
	}
}

// Batch is a run of messages in stream order.
type Batch struct {
	Msgs   []jetstream.Msg
	seq    uint64 // order of formation within one run of the consumer
	turns  *turns
	passed bool
}

// InOrder runs f once every batch formed before this one has run its own
// InOrder (or finished): batches are handled side by side, but what f does
// (ingest publishes a user's notifications) follows the stream's order. A
// batch runs InOrder at most once.
func (b *Batch) InOrder(f func()) {
	if b.passed {
		panic("natsx: Batch.InOrder called twice")
	}
	b.turns.take(b.seq)
	defer b.passTurn()
	f()
}

// passTurn gives the turn to the next batch, once, after waiting for this
// batch's own: every batch takes and passes its turn exactly once, or the
// batches after it wait forever.
func (b *Batch) passTurn() {
	if b.passed {
		return
	}
	b.passed = true
	b.turns.take(b.seq)
	b.turns.pass()
}

// turns hands the turn from batch to batch in their order of formation.
type turns struct {
	mu   sync.Mutex
	cond *sync.Cond
	next uint64
}

func newTurns() *turns {
	t := &turns{}
	t.cond = sync.NewCond(&t.mu)
	return t
}

func (t *turns) take(seq uint64) {
	t.mu.Lock()
	for t.next != seq {
		t.cond.Wait()
	}
	t.mu.Unlock()
}

func (t *turns) pass() {
	t.mu.Lock()
	t.next++
	t.cond.Broadcast()
	t.mu.Unlock()
}
