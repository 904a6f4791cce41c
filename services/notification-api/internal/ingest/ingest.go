// Package ingest turns domain events from the EVENTS stream into
// notification rows and realtime messages.
//
// Per fetched batch: decode and validate each event (poison events are
// dead-lettered at once), build one row per recipient, insert them all in one
// idempotent statement, publish every resulting notification on its user's
// NOTIFY subject, and only then ack the events. A crash anywhere before the
// ack means redelivery; the insert then adds nothing and the same
// notifications are published again under the same message ids, which
// JetStream de-duplicates.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/natsx"
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

// Consumer is the ingest pipeline.
type Consumer struct {
	js      jetstream.JetStream
	store   Inserter
	cfg     Config
	log     *slog.Logger
	metrics *metrics
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

// New returns a consumer; Run starts it.
func New(js jetstream.JetStream, st Inserter, cfg Config, log *slog.Logger, reg prometheus.Registerer) *Consumer {
	if cfg.Workers < 1 {
		cfg.Workers = 1
	}
	if cfg.MaxRetry == 0 {
		cfg.MaxRetry = time.Minute
	}
	return &Consumer{js: js, store: st, cfg: cfg, log: log, metrics: newMetrics(reg)}
}

// Run consumes until ctx ends, then finishes the batches in flight and
// returns. Messages fetched but not processed are redelivered after AckWait.
// A consumer that cannot be set up, or whose iterator ends, is set up again
// after a growing pause: ingest never stops silently while the API serves.
func (c *Consumer) Run(ctx context.Context) error {
	natsx.KeepConsuming(ctx, c.log, c.consume)
	return nil
}

// consume runs the consumer once, until ctx ends or its iterator does.
func (c *Consumer) consume(ctx context.Context) error {
	setup, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cons, err := c.js.CreateOrUpdateConsumer(setup, natsx.StreamEvents, jetstream.ConsumerConfig{
		Durable:       c.cfg.Durable,
		Description:   "notification-api: events to in-app notifications",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.cfg.AckWait,
		MaxDeliver:    -1, // transient failures are retried until they pass; poison is dead-lettered
		MaxAckPending: c.cfg.Batch * c.cfg.Workers * 4,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("ingest consumer: %w", err)
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(c.cfg.Batch * c.cfg.Workers * 2))
	if err != nil {
		return fmt.Errorf("ingest consumer: %w", err)
	}
	defer context.AfterFunc(ctx, iter.Stop)()
	msgs := make(chan jetstream.Msg, c.cfg.Batch*c.cfg.Workers)
	go natsx.Feed(ctx, iter, msgs, c.log)
	free := make(chan struct{}, c.cfg.Workers)
	batches := make(chan batch, c.cfg.Workers)
	go c.form(msgs, free, batches)
	var wg sync.WaitGroup
	for range c.cfg.Workers {
		wg.Go(func() { c.work(free, batches) })
	}
	wg.Wait()
	return errors.New("the event iterator closed")
}

// work says it is free, handles the batch it gets, and again, until the
// batches end.
func (c *Consumer) work(free chan<- struct{}, batches <-chan batch) {
	for {
		free <- struct{}{} // never blocks: room for one token per worker
		b, ok := <-batches
		if !ok {
			return
		}
		// In-flight work finishes even during shutdown.
		c.handle(context.Background(), b)
	}
}

// batch is a run of events in stream order; seq numbers the batches in the
// order they were formed, and turns lets them publish in that order.
type batch struct {
	seq   uint64
	msgs  []jetstream.Msg
	turns *turns
}

// form cuts the messages into batches, in order, each when a worker is free
// for it, and closes out once msgs is closed and drained.
func (c *Consumer) form(msgs <-chan jetstream.Msg, free <-chan struct{}, out chan<- batch) {
	defer close(out)
	order := newTurns()
	var seq uint64
	for range free {
		b, open := c.nextBatch(msgs)
		if len(b) > 0 {
			out <- batch{seq: seq, msgs: b, turns: order}
			seq++
		}
		if !open {
			return
		}
	}
}

// nextBatch blocks for one message, then takes what arrives within MaxWait,
// up to Batch: under load the channel holds a backlog and batches fill at
// once. It reports false once msgs is closed.
func (c *Consumer) nextBatch(msgs <-chan jetstream.Msg) ([]jetstream.Msg, bool) {
	first, ok := <-msgs
	if !ok {
		return nil, false
	}
	b := []jetstream.Msg{first}
	linger := time.NewTimer(c.cfg.MaxWait)
	defer linger.Stop()
	for len(b) < c.cfg.Batch {
		select {
		case msg, ok := <-msgs:
			if !ok {
				return b, false
			}
			b = append(b, msg)
		case <-linger.C:
			return b, true
		}
	}
	return b, true
}

// turns lets batches publish in the order they were formed: workers store
// batches side by side, but a user's NOTIFY messages, which the gateway
// pushes and replays in stream order, must follow the order of the events.
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

// take blocks until it is batch seq's turn.
func (t *turns) take(seq uint64) {
	t.mu.Lock()
	for t.next != seq {
		t.cond.Wait()
	}
	t.mu.Unlock()
}

// pass gives the turn to the next batch; every batch takes and passes its
// turn exactly once, or the batches after it wait forever.
func (t *turns) pass() {
	t.mu.Lock()
	t.next++
	t.cond.Broadcast()
	t.mu.Unlock()
}

// handle processes one batch to the end: every message is acked,
// dead-lettered, or scheduled for redelivery. Its notifications are
// published in its turn (publishing is asynchronous; acks are awaited after
// the turn is passed on).
func (c *Consumer) handle(ctx context.Context, b batch) {
	start := time.Now()
	var rows []store.Row
	var good []jetstream.Msg
	for _, msg := range b.msgs {
		ev, err := contract.Decode(msg.Data())
		if err != nil {
			c.deadLetter(ctx, msg, err)
			continue
		}
		good = append(good, msg)
		rows = append(rows, rowsFor(ev, msg)...)
	}
	var stored []store.Row
	var err error
	if len(good) > 0 {
		stored, err = c.store.InsertBatch(ctx, rows)
	}
	b.turns.take(b.seq)
	var futures []jetstream.PubAckFuture
	if err == nil {
		futures, err = c.publish(stored)
	}
	b.turns.pass()
	if len(good) == 0 {
		return
	}
	if err == nil {
		err = c.awaitAcks(ctx, futures)
	}
	if err != nil {
		c.retryLater(good, err)
		return
	}
	for _, msg := range good {
		if err := msg.Ack(); err != nil {
			c.log.Warn("ack failed; the event will be redelivered and de-duplicated", "subject", msg.Subject(), "err", err)
		}
	}
	c.metrics.inserted.Add(float64(len(rows)))
	c.metrics.events.WithLabelValues("processed").Add(float64(len(good)))
	c.metrics.batchSeconds.Observe(time.Since(start).Seconds())
}

// rowsFor builds the notifications of one event: one per recipient, none
// for types without an in-app notification.
func rowsFor(ev *contract.Event, msg jetstream.Msg) []store.Row {
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
	data := []byte("{}")
	if ev.GetData() != nil {
		if b, err := protojson.Marshal(ev.GetData()); err == nil {
			data = b
		}
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
			Data:      data,
			CreatedAt: created,
		})
	}
	return rows
}

// publish sends each notification to its user's NOTIFY subject, in order,
// without waiting for the stream's acks.
func (c *Consumer) publish(rows []store.Row) ([]jetstream.PubAckFuture, error) {
	futures := make([]jetstream.PubAckFuture, 0, len(rows))
	for _, r := range rows {
		msg, err := NotificationMessage(r)
		if err != nil {
			return nil, err
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
// the message id, so republishing it is harmless.
func NotificationMessage(r store.Row) (*nats.Msg, error) {
	body, err := json.Marshal(notificationBody{Event: contract.UserEventNotification, Data: r.JSON()})
	if err != nil {
		return nil, fmt.Errorf("encode notification: %w", err)
	}
	msg := nats.NewMsg(contract.NotifySubject(r.UserID))
	msg.Data = body
	msg.Header.Set(nats.MsgIdHdr, r.ID.String())
	return msg, nil
}

// notificationBody encodes exactly as contract.UserMessage holding the
// notification's JSON, in one pass: encoding the notification first and
// then the envelope around it made encoding/json scan and copy the
// notification twice, a third of ingest's encoding work per event.
type notificationBody struct {
	Event string                `json:"event"`
	Data  contract.Notification `json:"data"`
}

func (c *Consumer) deadLetter(ctx context.Context, msg jetstream.Msg, cause error) {
	reason := cause.Error()
	fresh, err := natsx.DeadLetter(ctx, c.js, c.cfg.Durable, msg, reason)
	if err != nil {
		// Not set aside: let it come back rather than lose it.
		c.log.Error("dead-letter failed; event will be redelivered", "subject", msg.Subject(), "err", err)
		_ = msg.NakWithDelay(c.cfg.MaxRetry)
		return
	}
	if !fresh {
		return // a redelivery of an event already set aside and counted
	}
	c.log.Warn("event dead-lettered", "subject", msg.Subject(), "reason", reason)
	c.metrics.deadLettered.WithLabelValues(reasonClass(cause)).Inc()
	c.metrics.events.WithLabelValues("dead_lettered").Inc()
}

// retryLater schedules redelivery with a delay that grows with the number
// of deliveries, capped, so a database outage does not spin.
func (c *Consumer) retryLater(msgs []jetstream.Msg, cause error) {
	c.metrics.failures.Inc()
	c.log.Error("batch failed; scheduled for redelivery", "events", len(msgs), "err", cause)
	for _, msg := range msgs {
		delay := time.Second
		if md, err := msg.Metadata(); err == nil {
			delay = Backoff(md.NumDelivered, time.Second, c.cfg.MaxRetry)
		}
		if err := msg.NakWithDelay(delay); err != nil {
			c.log.Warn("nak failed; the event comes back after the ack wait", "err", err)
		}
	}
	c.metrics.events.WithLabelValues("retried").Add(float64(len(msgs)))
}

// Backoff doubles base for each delivery after the first, up to limit.
func Backoff(deliveries uint64, base, limit time.Duration) time.Duration {
	d := base
	for i := uint64(1); i < deliveries && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

func reasonClass(err error) string {
	var ie *contract.InvalidEventError
	if errors.As(err, &ie) {
		return ie.Kind
	}
	return "other"
}
