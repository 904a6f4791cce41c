package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xpeditis/notify/pkg/backoff"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/health"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/webhook"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/store"
)

// Options configure the Dispatcher.
type Options struct {
	Consumer     string        // durable consumer name on EVENTS
	AckWait      time.Duration // JetStream ack deadline of an event
	Batch        int           // events per fetch, and results per write
	Lease        time.Duration // how long a claim keeps a delivery from others
	PollInterval time.Duration // how often due retries are looked for
	Timeout      time.Duration // whole request
	Policy       Policy
	Limits       Limits
	Health       Health
}

// Health is where the dispatcher reports: its event consumer's condition
// and PostgreSQL's (a failure is reported there, not logged).
type Health struct {
	Consumer, Postgres *health.Condition
}

// deliveryStore is what the dispatcher needs of the database.
type deliveryStore interface {
	completer
	InsertDeliveries(ctx context.Context, rows []store.NewDelivery, lease time.Duration) ([]store.Job, error)
	ClaimDue(ctx context.Context, limit int, lease time.Duration) ([]store.Job, error)
	ReleaseClaims(ctx context.Context, jobs []store.Job) error
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
	sender  *Sender
	sched   *Scheduler
	rec     *Recorder
	js      jetstream.JetStream
	ann     Announcer
	metrics *Metrics
	log     *slog.Logger
	events  *natsx.Consumer
	room    func() // waits for room in the scheduler; set by consume
}

// New wires a dispatcher.
func New(o Options, st deliveryStore, cache *Cache, sender *Sender, js jetstream.JetStream, ann Announcer, metrics *Metrics, log *slog.Logger) *Dispatcher {
	d := &Dispatcher{o: o, st: st, cache: cache, sender: sender, js: js, ann: ann, metrics: metrics, log: log}
	d.sched = NewScheduler(o.Limits, d.deliver, func() { metrics.Dropped.Inc() })
	d.rec = NewRecorder(st, o.Batch, o.Policy.FailureThreshold, d.disabled, log)
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
		Workers:      1, // whatever has arrived joins the batch; nothing waits for more
		Pull:         2 * o.Batch,
		Retry:        backoff.Policy{Base: time.Second, Max: time.Minute, Jitter: 0.1},
		Health:       o.Health.Consumer,
		DeadLettered: func(error) { metrics.DeadLettered.Inc() },
		Log:          log,
	}, d.handle)
	return d
}

// InFlight is the number of requests in flight.
func (d *Dispatcher) InFlight() int { return d.sched.InFlight() }

// Run consumes events and sends deliveries until ctx ends, then lets the
// requests in flight finish, records them, and hands unsent claims back.
func (d *Dispatcher) Run(ctx context.Context) error {
	go d.rec.Run(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { d.consume(ctx) })
	wg.Go(func() { d.poll(ctx) })
	wg.Go(func() { d.sweep(ctx) })
	wg.Wait()

	left := d.sched.Close()
	d.rec.Close()
	<-d.rec.Done()
	releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := d.st.ReleaseClaims(releaseCtx, left); err != nil {
		d.log.Warn("release queued deliveries; they are taken again when their claims run out", "jobs", len(left), "err", err)
	}
	d.sender.Close()
	return nil
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
	var rows []store.NewDelivery
	var done []int // indexes of the events whose deliveries are in rows
	for i, m := range b.Msgs {
		ev, err := contract.Decode(m.Data())
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
		d.o.Health.Postgres.Report(err)
		if err != nil {
			out[i] = natsx.Retry(err)
			continue
		}
		var body []byte
		for _, h := range hooks {
			if !h.Subscribed(route.Webhook) {
				continue
			}
			if body == nil {
				if body, err = Body(ev, route.Webhook, m); err != nil {
					break
				}
			}
			rows = append(rows, store.NewDelivery{ID: uuid.Must(uuid.NewV7()), WebhookID: h.ID, OrgID: h.OrgID, EventID: ev.GetId(), Event: route.Webhook, Body: body})
		}
		if err != nil {
			out[i] = natsx.Poison(fmt.Errorf("encode webhook body: %w", err))
			continue
		}
		done = append(done, i)
	}
	jobs, err := d.st.InsertDeliveries(ctx, rows, d.o.Lease)
	d.o.Health.Postgres.Report(err)
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

// webhookBody is what the integrator receives.
type webhookBody struct {
	ID             string         `json:"id"`
	Type           string         `json:"type"`
	CreatedAt      string         `json:"createdAt"`
	OrganizationID string         `json:"organizationId"`
	Data           map[string]any `json:"data"`
}

// Body encodes the request body of an event: {"id","type","createdAt",
// "organizationId","data"}, with the webhook event name as type and the
// time the event occurred (or was stored, when the producer gave none).
func Body(ev *contract.Event, webhookEvent string, m jetstream.Msg) ([]byte, error) {
	created := ev.GetOccurredAt().AsTime()
	if ev.GetOccurredAt() == nil {
		created = time.Now()
		if m != nil {
			if md, err := m.Metadata(); err == nil {
				created = md.Timestamp
			}
		}
	}
	data := ev.GetData().AsMap()
	if data == nil {
		data = map[string]any{}
	}
	return encode(webhookBody{
		ID: ev.GetId(), Type: webhookEvent, CreatedAt: created.UTC().Format(time.RFC3339Nano),
		OrganizationID: ev.GetOrganizationId(), Data: data,
	})
}

func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
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
			jobs, err := d.st.ClaimDue(ctx, room, d.o.Lease)
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

// leaseMargin is kept between the end of a request and the end of its
// claim, so that no other worker can take the delivery while it is sent.
const leaseMargin = 5 * time.Second

// deliver makes one automatic attempt and hands its result to the
// recorder. A failed attempt's result is written before deliver returns, so
// that the scheduler's next attempt to the webhook finds it disabled once
// the threshold is reached.
func (d *Dispatcher) deliver(j store.Job) outcome {
	if time.Until(j.LeaseUntil) < d.o.Timeout+leaseMargin {
		d.metrics.Dropped.Inc() // waited too long in its lane: let the poller claim it afresh
		return notSent
	}
	ctx := context.Background() // requests in flight finish during shutdown, bounded by the timeout
	hook, ok, err := d.cache.Hook(ctx, j.OrgID, j.WebhookID)
	if err != nil {
		d.o.Health.Postgres.Fail(err)
		return notSent
	}
	if !ok {
		return notSent // no longer ACTIVE: its pending rows were stopped with it
	}
	if hook.SecretErr != nil {
		d.failUnsigned(j, hook.SecretErr)
		return notSent
	}
	out := d.sender.Send(ctx, hook.URL, hook.Secret, webhook.Delivery{ID: j.DeliveryID.String(), Event: j.Event, Timestamp: time.Now(), Attempt: j.Attempt}, j.Body)
	res := store.Result{Job: j, Attempt: AttemptOf(j.Attempt, out, false)}
	d.metrics.AttemptDuration.Observe(out.Duration.Seconds())
	d.metrics.Attempts.WithLabelValues(outcomeLabel(out)).Inc()
	switch {
	case out.Success():
		res.Status = store.DeliverySucceeded
		d.metrics.Deliveries.WithLabelValues(res.Status).Inc()
	case j.Attempt < d.o.Policy.MaxAttempts:
		res.Status, res.RetryIn = store.DeliveryPending, d.o.Policy.Delay(j.Attempt, out.RetryAfter)
		d.metrics.Retries.Inc()
	default:
		res.Status = store.DeliveryFailed
		d.metrics.Deliveries.WithLabelValues(res.Status).Inc()
	}
	if !out.Success() {
		d.log.Warn("webhook attempt failed", "webhook_id", j.WebhookID, "delivery_id", j.DeliveryID, "event_id", j.EventID,
			"attempt", j.Attempt, "host", hostOf(hook.URL), "status_code", out.StatusCode, "reason", out.Err,
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
		Attempt: store.Attempt{Number: j.Attempt, At: time.Now().UTC(), Error: reason.Error()},
		Status:  store.DeliveryFailed, NotCounted: true,
	})
}

// AttemptOf is the log record of an outcome.
func AttemptOf(n int, out Outcome, manual bool) store.Attempt {
	return store.Attempt{
		Number: n, At: time.Now().Add(-out.Duration).UTC(), DurationMs: out.Duration.Milliseconds(),
		StatusCode: out.StatusCode, Error: out.Err, ResponseExcerpt: out.Excerpt, Manual: manual,
	}
}

func outcomeLabel(o Outcome) string {
	switch {
	case o.Success():
		return "success"
	case o.StatusCode != 0:
		return "http_error"
	case strings.HasPrefix(o.Err, "refused"):
		return "refused"
	case strings.HasPrefix(o.Err, "timeout"):
		return "timeout"
	default:
		return "network_error"
	}
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
		d.cache.Invalidate(h.OrgID)
		d.ann.Announce(h.OrgID)
	}
}
