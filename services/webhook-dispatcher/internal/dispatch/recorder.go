package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/xpeditis/notify/pkg/backoff"
	"github.com/xpeditis/notify/pkg/batch"
	"github.com/xpeditis/notify/pkg/health"

	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/store"
)

// completer writes a batch of results.
type completer interface {
	Complete(ctx context.Context, results []store.Result, threshold int) ([]store.Disabled, error)
}

// Recorder writes attempt results in batches: under load one transaction
// records hundreds of attempts, which is what lets PostgreSQL keep up.
type Recorder struct {
	st         completer
	in         chan entry
	batch      int
	threshold  int
	onDisabled func([]store.Disabled)
	pg         *health.Condition
	log        *slog.Logger
	done       chan struct{}
}

// entry is a queued result; written, when not nil, is closed once the
// result is written (or given up on).
type entry struct {
	res     store.Result
	written chan struct{}
}

// Window is how long the dispatcher gathers new events, after the first,
// for one insert of their deliveries: the wait is part of every delivery's
// latency, so it stays a few milliseconds; at a steady rate it still puts
// several deliveries in each insert (BENCHMARKS.md, "Webhook deliveries").
// Under load batches fill before it ends.
const Window = 5 * time.Millisecond

// RecordWindow is how long the recorder gathers attempt results, after the
// first, for one transaction. Each transaction costs PostgreSQL about a
// millisecond and a half of CPU on top of its rows (its commit's WAL flush
// mostly), so that at 800 deliveries/s the commits of 5 ms batches cost
// more than the deliveries' rows. The wait is after the request, so it
// adds nothing to the delivery's latency: it holds the result (and the
// delivery's claim, which the lease keeps) a little longer, and a failed
// attempt's scheduler slot (AddAndWait) until its batch is written.
const RecordWindow = 50 * time.Millisecond

// recordRetry spaces the attempts to write a batch of results.
var recordRetry = backoff.Policy{Base: 50 * time.Millisecond, Max: 5 * time.Second}

// NewRecorder returns a recorder; onDisabled hears of webhooks turned
// FAILED; failures to write are reported to pg.
func NewRecorder(st completer, batch, threshold int, onDisabled func([]store.Disabled), pg *health.Condition, log *slog.Logger) *Recorder {
	return &Recorder{st: st, in: make(chan entry, 4*batch), batch: batch, threshold: threshold, onDisabled: onDisabled, pg: pg, log: log, done: make(chan struct{})}
}

// Add queues a result; it blocks while the queue is full, which slows the
// senders down to what the database takes.
func (r *Recorder) Add(res store.Result) { r.in <- entry{res: res} }

// AddAndWait queues a result and returns once it is written, and so once a
// webhook it turned FAILED has left the cache: the next attempt to that
// webhook then sees it disabled.
func (r *Recorder) AddAndWait(res store.Result) {
	e := entry{res: res, written: make(chan struct{})}
	r.in <- e
	<-e.written
}

// Close ends the input; Run writes what is left and returns.
func (r *Recorder) Close() { close(r.in) }

// Done is closed when Run has returned.
func (r *Recorder) Done() <-chan struct{} { return r.done }

// Run writes batches until Close: what arrives within RecordWindow of a
// result is written with it, so that results trickling in at a steady rate
// share a transaction as a burst's do.
func (r *Recorder) Run(ctx context.Context) {
	defer close(r.done)
	var entries []entry
	results := make([]store.Result, 0, r.batch)
	for open := true; open; {
		// Results are written even after ctx ends, until Close: the
		// deliveries they complete are held until then.
		entries, open = batch.Next(context.WithoutCancel(ctx), r.in, entries[:0], r.batch, RecordWindow)
		if len(entries) == 0 {
			continue
		}
		results = results[:0]
		for _, e := range entries {
			results = append(results, e.res)
		}
		r.write(ctx, results)
		for _, e := range entries {
			if e.written != nil {
				close(e.written)
			}
		}
	}
}

// write writes one batch, retrying with a capped backoff until it is
// written: the results exist only here, and the deliveries they complete
// stay held by this process until then (a process that cannot reach
// PostgreSQL also stops renewing its lease, and other replicas take them
// over). Meanwhile Add blocks, which stops the senders. The failure is
// reported to PostgreSQL's condition, which logs the outage once.
func (r *Recorder) write(ctx context.Context, buf []store.Result) {
	for attempt := 1; ; attempt++ {
		disabled, err := r.st.Complete(context.WithoutCancel(ctx), buf, r.threshold)
		if err == nil {
			r.pg.OK()
			if len(disabled) > 0 {
				r.onDisabled(disabled)
			}
			return
		}
		r.pg.Fail(fmt.Errorf("record %d webhook attempts: %w", len(buf), err))
		time.Sleep(recordRetry.Delay(attempt)) // the results are held in memory; nothing to poll for
	}
}
