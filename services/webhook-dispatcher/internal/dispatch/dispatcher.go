package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/xpeditis/notify/pkg/backoff"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/health"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/tracing"
	"github.com/xpeditis/notify/pkg/webhook"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/outbound"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/store"
)

// Options configure the Dispatcher.
type Options struct {
	Consumer     string        // durable consumer name on EVENTS
	AckWait      time.Duration // JetStream ack deadline of an event
	Batch        int           // events per fetch, and results per write
	Lease        time.Duration // how long this process's claims outlive its last lease renewal
	PollInterval time.Duration // how often due retries are looked for
	Policy       Policy
	Limits       Limits
	Health       Health
	Tracer       trace.Tracer // the span of each batch of events
}

// Health is where the dispatcher reports: its event consumer's condition
// and PostgreSQL's (a failure is reported there, not logged).
type Health struct {
	Consumer, Postgres *health.Condition
}

// deliveryStore is what the dispatcher needs of the database.
type deliveryStore interface {
	completer
	leaseStore
	InsertDeliveries(ctx context.Context, holder, batch uuid.UUID, rows []store.NewDelivery) ([]store.Job, error)
	ClaimDue(ctx context.Context, holder, batch uuid.UUID, limit int) ([]store.Job, error)
	ReleaseClaims(ctx context.Context, jobs []store.Job, delay time.Duration) error
}

// Announcer tells every replica that an organization's webhooks changed.
type Announcer interface {
	Announce(org string)
}

// Dispatcher turns events into signed deliveries.
type Dispatcher struct {
	o       Options
	st      deliveryStore
	cache   *Cache
	sender  *outbound.Sender
	sched   *Scheduler
	rec     *Recorder
	lease   *lease
	js      jetstream.JetStream
	ann     Announcer
	metrics *Metrics
	log     *slog.Logger
	events  *natsx.Consumer
	room    func() // waits for room in the scheduler; set by consume
}

// New wires a dispatcher.
func New(o Options, st deliveryStore, cache *Cache, sender *outbound.Sender, js jetstream.JetStream, ann Announcer, metrics *Metrics, log *slog.Logger) *Dispatcher {
	if o.Tracer == nil {
		o.Tracer = noop.NewTracerProvider().Tracer("")
	}
	d := &Dispatcher{o: o, st: st, cache: cache, sender: sender, js: js, ann: ann, metrics: metrics, log: log}
	d.sched = NewScheduler(o.Limits, d.deliver, func(jobs []store.Job) {
		for _, j := range jobs {
			d.handBack(j, deferDelay)
		}
	})
	metrics.countInFlight(d.sched.InFlight)
	d.rec = NewRecorder(st, o.Batch, o.Policy.FailureThreshold, d.disabled, o.Health.Postgres, log)
	d.lease = newLease(st, o.Lease, func(n int) { metrics.TakenOver.Add(float64(n)) }, o.Health.Postgres, log)
	d.events = natsx.NewConsumer(js, natsx.ConsumerConfig{
		Stream: natsx.StreamEvents,
		Consumer: jetstream.ConsumerConfig{
			Durable:       o.Consumer,
			Description:   "webhook-dispatcher: fans events out to webhook deliveries",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       o.AckWait,
			MaxAckPending: 20 * o.Batch,
			// Only the types that produce a webhook delivery: the server does not
			// send the others, which would be decoded and acked for nothing.
			FilterSubjects: contract.WebhookEventSubjects(),
			DeliverPolicy:  jetstream.DeliverAllPolicy,
		},
		Batch:        o.Batch,
		MaxWait:      Window, // events trickling in share one insert
		Workers:      1,
		Pull:         2 * o.Batch,
		Retry:        backoff.Policy{Base: time.Second, Max: time.Minute, Jitter: 0.1},
		Health:       o.Health.Consumer,
		DeadLettered: func(error) { metrics.DeadLettered.Inc() },
		Log:          log,
		Metrics:      metrics.reg,
	}, d.handle)
	return d
}

// Run consumes events and sends deliveries until ctx ends, then drains the
// delivery side (drainDeliveries) and gives its lease up.
func (d *Dispatcher) Run(ctx context.Context) error {
	go d.rec.Run(ctx)
	// The lease is renewed until the drain is over: requests still in
	// flight keep their deliveries from other replicas.
	leaseCtx, endLease := context.WithCancel(context.WithoutCancel(ctx))
	leaseDone := make(chan struct{})
	go func() { defer close(leaseDone); d.lease.Run(leaseCtx) }()
	consumed := make(chan struct{})
	go func() { defer close(consumed); d.consume(ctx) }()
	var wg sync.WaitGroup
	wg.Go(func() { d.poll(ctx) })
	wg.Go(func() { d.sweep(ctx) })
	wg.Wait()
	// Once no event handler runs, nothing claims any more: the queue is
	// handed back while the consumer still hands back its last pull.
	<-d.events.Quiet()
	d.drainDeliveries(ctx)
	<-consumed
	endLease()
	<-leaseDone
	d.lease.End(ctx)
	d.sender.Close()
	return nil
}

// drainDeliveries ends the delivery side of a graceful stop, once nothing
// claims any more: queued jobs are handed back at once, due now, so that
// another replica sends them within its poll interval; requests in flight
// finish (each within WEBHOOK_TIMEOUT: cutting one short would turn an
// answer about to arrive into an interrupted attempt and a second request)
// and their results are recorded.
func (d *Dispatcher) drainDeliveries(ctx context.Context) {
	queued := d.sched.Stop()
	if len(queued) > 0 {
		releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err := d.st.ReleaseClaims(releaseCtx, queued, 0)
		cancel()
		if err != nil {
			d.log.Warn("hand back queued deliveries; other replicas take them over when this one's lease runs out", "jobs", len(queued), "err", err)
		} else {
			d.metrics.Dropped.Add(float64(len(queued)))
			d.log.Info("handed queued deliveries back for other replicas", "jobs", len(queued), "in_flight", d.sched.InFlight())
		}
	}
	d.sched.Wait()
	d.rec.Close()
	<-d.rec.Done()
}

// consume reads EVENTS through the consumer skeleton, which hands back on
// shutdown what it fetched and did not start; after each batch it waits
// (up to 2 s, not past shutdown) for room in the scheduler, so that a
// backlog of deliveries slows the reading of events.
func (d *Dispatcher) consume(ctx context.Context) {
	d.room = func() { d.sched.WaitForRoom(ctx, 2*time.Second) }
	d.events.Run(ctx)
}

// handle fans out one batch of events: one delivery per (event, matching
// webhook) is recorded before the events are acked. Its context is not
// cancelled at shutdown, so an insert under way completes and is acked.
func (d *Dispatcher) handle(ctx context.Context, b *natsx.Batch) []natsx.Outcome {
	out := make([]natsx.Outcome, len(b.Msgs))
	// Each delivery keeps its event's trace context for its attempts; the
	// batch's span links to every event's.
	traces := make([]context.Context, len(b.Msgs))
	for i, m := range b.Msgs {
		traces[i] = tracing.Extract(ctx, m.Headers())
	}
	ctx, span := d.o.Tracer.Start(ctx, "store deliveries", trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithLinks(tracing.LinksOf(traces)...),
		trace.WithAttributes(semconv.MessagingSystemKey.String("nats"), semconv.MessagingBatchMessageCount(len(b.Msgs))))
	defer span.End()
	var rows []store.NewDelivery
	var done []int // indexes of the events whose deliveries are in rows
	for i, m := range b.Msgs {
		ev, err := contract.DecodeReceived(m.Data())
		if err != nil {
			out[i] = natsx.Poison(err)
			continue
		}
		route, _ := contract.RouteOf(ev.GetType())
		if route.Webhook == "" {
			out[i] = natsx.Ack()
			continue
		}
		hooks, err := d.cache.Active(ctx, ev.GetOrganizationId())
		if err != nil {
			// Only a failure is news: a success may come from the cache
			// without reaching PostgreSQL, and calling it "available"
			// flipped the condition at every cached event of an outage.
			d.o.Health.Postgres.Fail(err)
			out[i] = natsx.Retry(err)
			continue
		}
		var body []byte
		for _, h := range hooks {
			if !h.Subscribed(route.Webhook) {
				continue
			}
			if body == nil {
				if body, err = outbound.Body(ev, route.Webhook, storedAt(m)); err != nil {
					break
				}
			}
			rows = append(rows, store.NewDelivery{ID: uuid.Must(uuid.NewV7()), WebhookID: h.ID, OrgID: h.OrgID, EventID: ev.GetId(),
				Event: route.Webhook, Body: body, TraceParent: tracing.TraceParent(traces[i])})
		}
		if err != nil {
			out[i] = natsx.Poison(fmt.Errorf("encode webhook body: %w", err))
			continue
		}
		done = append(done, i)
	}
	// While a failed claim is not cleared up, the rows are inserted
	// unclaimed (no live lease is uuid.Nil's), for any replica's poller.
	holder, batch := uuid.Nil, uuid.Nil
	if b, ok := d.lease.claim(); ok {
		holder, batch = d.lease.holder, b
	}
	jobs, err := d.st.InsertDeliveries(ctx, holder, batch, rows)
	if holder != uuid.Nil {
		d.lease.claimed(batch, err)
	}
	span.SetAttributes(attribute.Int("notify.deliveries", len(rows)))
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	if len(rows) > 0 { // nothing to write reached nothing
		d.o.Health.Postgres.Report(err)
	}
	for _, i := range done {
		if err != nil {
			out[i] = natsx.Retry(err)
		} else {
			out[i] = natsx.Ack()
		}
	}
	if err == nil {
		d.sched.Submit(jobs)
	}
	if d.room != nil {
		d.room()
	}
	return out
}

// storedAt is when m entered its stream, or now when that is unknown.
func storedAt(m jetstream.Msg) time.Time {
	if md, err := m.Metadata(); err == nil {
		return md.Timestamp
	}
	return time.Now()
}

// poll claims due deliveries: scheduled retries, and rows whose claim ran
// out because their worker died.
func (d *Dispatcher) poll(ctx context.Context) {
	t := time.NewTicker(d.o.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for ctx.Err() == nil {
			room := min(d.sched.Room(), d.o.Batch)
			if room == 0 {
				break
			}
			batch, ok := d.lease.claim()
			if !ok {
				break // a failed claim is cleared up by the next renewal
			}
			jobs, err := d.st.ClaimDue(ctx, d.lease.holder, batch, room)
			d.lease.claimed(batch, err)
			if err != nil {
				if ctx.Err() == nil {
					d.o.Health.Postgres.Fail(err)
				}
				break
			}
			d.o.Health.Postgres.OK()
			d.sched.Submit(jobs)
			if len(jobs) < room {
				break
			}
		}
	}
}

func (d *Dispatcher) sweep(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.cache.Sweep()
		}
	}
}

// deferDelay is how long a job this process could not run now (a full
// lane, a failed webhook lookup) waits in the queue before it is claimed
// again, so that such jobs do not go round between the poller and the
// scheduler.
const deferDelay = 5 * time.Second

// handBack gives a claimed job that was not sent back to the queue, due
// after delay, through the recorder; the attempt its claim started is taken
// back.
func (d *Dispatcher) handBack(j store.Job, delay time.Duration) {
	d.metrics.Dropped.Inc()
	d.rec.Add(store.Result{Job: j, Unsent: true, RetryIn: delay})
}

// deliver makes one automatic attempt and hands its result to the
// recorder. A failed attempt's result is written before deliver returns, so
// that the scheduler's next attempt to the webhook finds it disabled once
// the threshold is reached.
func (d *Dispatcher) deliver(j store.Job) outcome {
	// Requests in flight finish during shutdown, bounded by the timeout;
	// the attempt is traced in its event's trace.
	ctx := tracing.FromTraceParent(context.Background(), j.TraceParent)
	hook, ok, err := d.cache.Hook(ctx, j.OrgID, j.WebhookID)
	if err != nil {
		d.o.Health.Postgres.Fail(err)
		d.handBack(j, deferDelay)
		return notSent
	}
	if !ok {
		d.handBack(j, deferDelay) // no longer ACTIVE: its pending rows were stopped with it
		return notSent
	}
	if hook.SecretErr != nil {
		d.failUnsigned(j, hook.SecretErr)
		return notSent
	}
	// Checked right before the request: the lookup above may have waited
	// on PostgreSQL.
	if !d.lease.Covers(j.ClaimedAt) {
		d.handBack(j, 0) // the lease is not live, or deliveries were taken over since the claim
		return notSent
	}
	out := d.sender.Send(ctx, hook.URL, hook.Signing(time.Now()), webhook.Delivery{ID: j.DeliveryID.String(), Event: j.Event, Timestamp: time.Now(), Attempt: j.Attempt}, j.Body)
	res := store.Result{Job: j, Attempt: out.Attempt(j.Attempt, false)}
	d.metrics.AttemptDuration.Observe(out.Duration.Seconds())
	d.metrics.Attempts.WithLabelValues(out.Kind.Label()).Inc()
	// Attempts whose answer was never recorded (their dispatcher died) do
	// not use up the budget: the receiver may not have seen them.
	tries := j.Attempt - j.Interrupted
	switch {
	case out.Success():
		res.Status = store.DeliverySucceeded
		d.metrics.Deliveries.WithLabelValues(res.Status).Inc()
	case out.Retryable() && tries < d.o.Policy.MaxAttempts:
		res.Status, res.RetryIn = store.DeliveryPending, d.o.Policy.Delay(tries, out.RetryAfter)
		d.metrics.Retries.Inc()
	default:
		res.Status = store.DeliveryFailed
		d.metrics.Deliveries.WithLabelValues(res.Status).Inc()
	}
	if !out.Success() {
		d.log.Warn("webhook attempt failed", "webhook_id", j.WebhookID, "delivery_id", j.DeliveryID, "event_id", j.EventID,
			"attempt", j.Attempt, "host", hostOf(hook.URL), "outcome", out.Kind.Label(), "status_code", out.StatusCode, "reason", out.Reason(),
			"next", res.Status, "retry_in", res.RetryIn.String())
		d.rec.AddAndWait(res)
		return failed
	}
	d.rec.Add(res)
	return answered
}

// failUnsigned records a delivery that cannot be signed as FAILED with the
// reason, without sending it: the integrator and the operator see it in the
// delivery log and can retry it by hand once the secret is readable again.
// It does not count toward failureCount: the fault is ours (a missing or
// changed key), not the endpoint's, which was never tried, and counting it
// would disable a healthy webhook.
func (d *Dispatcher) failUnsigned(j store.Job, reason error) {
	d.metrics.Deliveries.WithLabelValues(store.DeliveryFailed).Inc()
	d.log.Warn("webhook delivery not sent", "webhook_id", j.WebhookID, "delivery_id", j.DeliveryID, "event_id", j.EventID, "reason", reason.Error())
	d.rec.Add(store.Result{
		Job:     j,
		Attempt: store.Attempt{Number: j.Attempt, At: time.Now().UTC(), Outcome: store.OutcomeNotSent, Error: reason.Error()},
		Status:  store.DeliveryFailed, NotCounted: true,
	})
}

// hostOf keeps only the host of a URL for logs: paths and queries can carry
// the integrator's tokens.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

func (d *Dispatcher) disabled(hooks []store.Disabled) {
	for _, h := range hooks {
		d.metrics.Disabled.Inc()
		d.log.Warn("webhook disabled after failed attempts", "webhook_id", h.ID, "org", h.OrgID, "failure_count", h.FailureCount)
		d.ann.Announce(h.OrgID) // which drops this replica's cache entry too
	}
}
