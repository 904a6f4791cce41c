// Package ingest turns domain events from the EVENTS stream into
// notification rows and realtime messages.
//
// Per fetched batch: decode and validate each event (poison events are
// dead-lettered at once), build one row per recipient, insert them all at
// once, idempotently (store.InsertBatch), publish every resulting
// notification on its user's NOTIFY subject, and only then ack the events. A crash anywhere before the
// ack means redelivery; the insert then adds nothing and the same
// notifications are published again under the same message ids, which
// JetStream de-duplicates.
//
// Tracing: each event gets a span in its producer's trace ("ingest
// events.<TYPE>"), whose context its notifications carry in their NOTIFY
// headers to the gateway; the batch gets a span of its own, linked to every
// event's, with the insert and the NOTIFY publish as its children.
package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/xpeditis/notify/pkg/backoff"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/health"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/tracing"
	"github.com/xpeditis/notify/services/notification-api/internal/store"
)

// Inserter is the part of the store ingest needs.
type Inserter interface {
	InsertBatch(ctx context.Context, rows []store.Row) ([]store.Row, error)
}

// Config of the consumer.
type Config struct {
	Durable  string        // consumer name
	Batch    int           // most events per insert
	MaxWait  time.Duration // how long to wait to fill a batch
	AckWait  time.Duration
	Workers  int           // batches processed concurrently
	MaxRetry time.Duration // cap of the redelivery delay after a failure
}

// Consumer is the ingest pipeline: the handler of a natsx.Consumer.
type Consumer struct {
	js       jetstream.JetStream
	store    Inserter
	cfg      Config
	postgres *health.Condition
	nats     *health.Condition
	metrics  *metrics
	consumer *natsx.Consumer
	tracer   trace.Tracer
}

type metrics struct {
	events       *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	inserted     prometheus.Counter
	batchSeconds prometheus.Histogram
	failures     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "notify_ingest_events_total", Help: "Events handled by notification-api, by outcome.",
		}, []string{"outcome"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "notify_ingest_dead_lettered_total", Help: "Events set aside as invalid, by reason class.",
		}, []string{"reason"}),
		inserted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "notify_ingest_notifications_inserted_total", Help: "Notification rows written.",
		}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "notify_ingest_batch_seconds", Help: "Time to store, publish and ack one batch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "notify_ingest_batch_failures_total", Help: "Batches that failed and were scheduled for redelivery.",
		}),
	}
	reg.MustRegister(m.events, m.deadLettered, m.inserted, m.batchSeconds, m.failures)
	return m
}

// Health is where ingest reports: its consumer's condition, and those of
// the dependencies a batch uses (a failure is reported there, not logged).
type Health struct {
	Consumer, Postgres, NATS *health.Condition
}

// New returns a consumer; Run starts it.
func New(js jetstream.JetStream, st Inserter, cfg Config, hc Health, log *slog.Logger, reg prometheus.Registerer, tr trace.Tracer) *Consumer {
	if cfg.MaxRetry == 0 {
		cfg.MaxRetry = time.Minute
	}
	c := &Consumer{js: js, store: st, cfg: cfg, postgres: hc.Postgres, nats: hc.NATS, metrics: newMetrics(reg), tracer: tr}
	c.consumer = natsx.NewConsumer(js, natsx.ConsumerConfig{
		Stream: natsx.StreamEvents,
		Consumer: jetstream.ConsumerConfig{
			Durable:       cfg.Durable,
			Description:   "notification-api: events to in-app notifications",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       cfg.AckWait,
			MaxDeliver:    -1, // transient failures are retried until they pass; poison is dead-lettered
			MaxAckPending: cfg.Batch * max(cfg.Workers, 1) * 4,
			DeliverPolicy: jetstream.DeliverAllPolicy,
		},
		Batch:   cfg.Batch,
		MaxWait: cfg.MaxWait,
		Workers: cfg.Workers,
		Pull:    cfg.Batch * max(cfg.Workers, 1) * 2,
		Retry:   backoff.Policy{Base: time.Second, Max: cfg.MaxRetry, Jitter: 0.1},
		Health:  hc.Consumer,
		DeadLettered: func(cause error) {
			c.metrics.deadLettered.WithLabelValues(reasonClass(cause)).Inc()
			c.metrics.events.WithLabelValues("dead_lettered").Inc()
		},
		Log:     log,
		Metrics: reg,
	}, c.handle)
	return c
}

// Run consumes until ctx ends, then finishes the batches in hand, hands
// back what was fetched but not started, and returns (natsx.Consumer).
func (c *Consumer) Run(ctx context.Context) error {
	c.consumer.Run(ctx)
	return nil
}

// handle processes one batch to the end: poison events are dead-lettered,
// the others stored and published, then acked, or all retried when a
// dependency failed. Its notifications are published in its turn
// (publishing is asynchronous; acks are awaited after the turn is passed
// on).
func (c *Consumer) handle(ctx context.Context, b *natsx.Batch) []natsx.Outcome {
	start := time.Now()
	out := make([]natsx.Outcome, len(b.Msgs))
	traces := c.startTraces(ctx, b.Msgs)
	defer traces.end(out)
	ctx = traces.batch
	var rows []store.Row
	var good []int // indexes of the decoded events
	for i, msg := range b.Msgs {
		ev, err := contract.DecodeReceived(msg.Data())
		if err != nil {
			out[i] = natsx.Poison(err)
			continue
		}
		out[i] = natsx.Ack()
		good = append(good, i)
		traces.byEvent[ev.GetId()] = traces.events[i]
		rows = append(rows, rowsFor(ev, msg)...)
	}
	if len(good) == 0 {
		return out
	}
	insertCtx, insertSpan := c.tracer.Start(ctx, "insert notifications", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(semconv.DBSystemNamePostgreSQL, attribute.Int("notify.rows", len(rows))))
	stored, err := c.store.InsertBatch(insertCtx, rows)
	endSpan(insertSpan, err)
	if len(rows) > 0 { // events without recipients write nothing, and say nothing of PostgreSQL
		c.postgres.Report(err)
	}
	dependency := c.nats
	if err != nil {
		dependency = c.postgres // already told
	}
	var futures []jetstream.PubAckFuture
	_, publishSpan := c.tracer.Start(ctx, "publish notify.user.*", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(semconv.MessagingSystemKey.String("nats"), semconv.MessagingBatchMessageCount(len(stored))))
	b.InOrder(func() {
		if err == nil {
			futures, err = c.publish(ctx, stored, traces.byEvent)
		}
	})
	if err == nil {
		err = c.awaitAcks(ctx, futures)
	}
	endSpan(publishSpan, err)
	if dependency == c.nats {
		c.nats.Report(err)
	}
	if err != nil {
		c.metrics.failures.Inc()
		c.metrics.events.WithLabelValues("retried").Add(float64(len(good)))
		for _, i := range good {
			out[i] = natsx.Retry(err)
		}
		return out
	}
	c.metrics.inserted.Add(float64(len(rows)))
	c.metrics.events.WithLabelValues("processed").Add(float64(len(good)))
	c.metrics.batchSeconds.Observe(time.Since(start).Seconds())
	return out
}

// rowsFor builds the notifications of one event: one per recipient, none
// for types without an in-app notification.
func rowsFor(ev contract.Received, msg jetstream.Msg) []store.Row {
	route, _ := contract.RouteOf(ev.GetType()) // Decode checked the type
	if route.InApp == "" || len(ev.GetRecipients()) == 0 {
		return nil
	}
	created := time.Now().UTC().Truncate(time.Microsecond)
	if md, err := msg.Metadata(); err == nil {
		created = md.Timestamp.UTC().Truncate(time.Microsecond) // stable across redeliveries; PostgreSQL keeps microseconds
	}
	priority := route.Priority
	if p, ok := contract.ParsePriority(ev.GetPriority()); ok {
		priority = p
	}
	title, message := route.Title, route.Message
	if ev.GetTitle() != "" {
		title = ev.GetTitle()
	}
	if ev.GetMessage() != "" {
		message = ev.GetMessage()
	}
	seen := make(map[string]bool, len(ev.GetRecipients()))
	rows := make([]store.Row, 0, len(ev.GetRecipients()))
	for _, user := range ev.GetRecipients() {
		if seen[user] {
			continue
		}
		seen[user] = true
		rows = append(rows, store.Row{
			ID:        uuid.Must(uuid.NewV7()),
			UserID:    user,
			OrgID:     ev.GetOrganizationId(),
			EventID:   ev.GetId(),
			Type:      route.InApp,
			Priority:  string(priority),
			Title:     title,
			Message:   message,
			Data:      ev.Data,
			CreatedAt: created,
		})
	}
	return rows
}

// batchTraces are the spans of one batch: the batch's own, and one per
// event in the event's trace, whose context the event's notifications carry.
type batchTraces struct {
	batch      context.Context // holds the batch span
	batchSpan  trace.Span
	events     []context.Context // per message of the batch
	eventSpans []trace.Span
	byEvent    map[string]context.Context // event id → its span's context
}

func (c *Consumer) startTraces(ctx context.Context, msgs []jetstream.Msg) *batchTraces {
	t := &batchTraces{events: make([]context.Context, len(msgs)), eventSpans: make([]trace.Span, len(msgs)),
		byEvent: make(map[string]context.Context, len(msgs))}
	for i, msg := range msgs {
		t.events[i] = tracing.Extract(ctx, msg.Headers())
	}
	t.batch, t.batchSpan = c.tracer.Start(ctx, "ingest batch", trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithLinks(tracing.LinksOf(t.events)...),
		trace.WithAttributes(semconv.MessagingSystemKey.String("nats"), semconv.MessagingBatchMessageCount(len(msgs))))
	batchLink := trace.LinkFromContext(t.batch)
	for i, msg := range msgs {
		t.events[i], t.eventSpans[i] = c.tracer.Start(t.events[i], "ingest "+msg.Subject(), trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithLinks(batchLink), trace.WithAttributes(tracing.Messaging(msg.Subject())...))
	}
	return t
}

// end ends the spans with the outcome of each event.
func (t *batchTraces) end(out []natsx.Outcome) {
	var failed error
	for i, span := range t.eventSpans {
		err := out[i].Err()
		endSpan(span, err)
		if err != nil {
			failed = err
		}
	}
	endSpan(t.batchSpan, failed)
}

func endSpan(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// publishChunk bounds the publishes of one batch awaiting their acks: the
// client refuses more than 4,000 outstanding async publishes (the other
// workers' batches hold some too), and a batch of events with many
// recipients carries tens of thousands of notifications.
const publishChunk = 512

// publish sends each notification to its user's NOTIFY subject, in order,
// carrying the trace context of its event's span, and returns the
// publishes still awaiting the stream's acks: at most publishChunk, since it
// waits for each full chunk before the next.
func (c *Consumer) publish(ctx context.Context, rows []store.Row, traces map[string]context.Context) ([]jetstream.PubAckFuture, error) {
	futures := make([]jetstream.PubAckFuture, 0, min(len(rows), publishChunk))
	for _, r := range rows {
		if len(futures) == publishChunk {
			if err := c.awaitAcks(ctx, futures); err != nil {
				return nil, err
			}
			futures = futures[:0]
		}
		msg, err := NotificationMessage(r)
		if err != nil {
			return nil, err
		}
		if ctx, ok := traces[r.EventID]; ok {
			tracing.Inject(ctx, msg.Header)
		}
		f, err := c.js.PublishMsgAsync(msg)
		if err != nil {
			return nil, fmt.Errorf("publish notification %s: %w", r.ID, err)
		}
		futures = append(futures, f)
	}
	return futures, nil
}

// awaitAcks waits for the stream to ack every publish.
func (c *Consumer) awaitAcks(ctx context.Context, futures []jetstream.PubAckFuture) error {
	timeout := time.NewTimer(c.cfg.AckWait / 2)
	defer timeout.Stop()
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish notification: %w", err)
		case <-timeout.C:
			return errors.New("publish notification: no ack in time")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// NotificationMessage is the NOTIFY message of a notification; its id is
// the message id, so republishing it is harmless. Its body is the bytes of
// json.Marshal(contract.UserMessage{Event: "notification", Data: the
// notification's JSON}), written in one pass by store.Row.AppendJSON, the
// list's encoder: 1.2–1.6 µs and 7 allocations a message against 2.3–2.6 µs
// and 10 with encoding/json (BenchmarkNotificationMessage).
func NotificationMessage(r store.Row) (*nats.Msg, error) {
	var b bytes.Buffer
	b.Grow(notificationBodySize + len(r.Title) + len(r.Message) + len(r.Data))
	b.WriteString(`{"event":"` + contract.UserEventNotification + `","data":`)
	if err := r.AppendJSON(&b); err != nil {
		return nil, fmt.Errorf("encode notification: %w", err)
	}
	b.WriteByte('}')
	msg := nats.NewMsg(contract.NotifySubject(r.UserID))
	msg.Data = b.Bytes()
	msg.Header.Set(nats.MsgIdHdr, r.ID.String())
	return msg, nil
}

// notificationBodySize is a body's size without its title, message and
// data: the envelope, the keys, an id, an event id and two times.
const notificationBodySize = 320

func reasonClass(err error) string {
	var ie *contract.InvalidEventError
	if errors.As(err, &ie) {
		return ie.Kind
	}
	return "other"
}
