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
func (c *Consumer) Run(ctx context.Context) error {
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
	go func() {
		<-ctx.Done()
		iter.Stop()
	}()
	msgs := make(chan jetstream.Msg, c.cfg.Batch*c.cfg.Workers)
	go natsx.Feed(ctx, iter, msgs, c.log)
	done := make(chan struct{}, c.cfg.Workers)
	for range c.cfg.Workers {
		go func() {
			defer func() { done <- struct{}{} }()
			c.work(msgs)
		}()
	}
	for range c.cfg.Workers {
		<-done
	}
	return nil
}

// work handles batches until msgs is closed and drained.
func (c *Consumer) work(msgs <-chan jetstream.Msg) {
	for {
		batch, open := c.nextBatch(msgs)
		if len(batch) > 0 {
			// In-flight work finishes even during shutdown.
			c.Handle(context.Background(), batch)
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
	batch := []jetstream.Msg{first}
	linger := time.NewTimer(c.cfg.MaxWait)
	defer linger.Stop()
	for len(batch) < c.cfg.Batch {
		select {
		case msg, ok := <-msgs:
			if !ok {
				return batch, false
			}
			batch = append(batch, msg)
		case <-linger.C:
			return batch, true
		}
	}
	return batch, true
}

// Handle processes one batch of event messages to the end: every message is
// acked, dead-lettered, or scheduled for redelivery.
func (c *Consumer) Handle(ctx context.Context, msgs []jetstream.Msg) {
	start := time.Now()
	var rows []store.Row
	var good []jetstream.Msg
	for _, msg := range msgs {
		ev, err := contract.Decode(msg.Data())
		if err != nil {
			c.deadLetter(ctx, msg, err)
			continue
		}
		good = append(good, msg)
		rows = append(rows, rowsFor(ev, msg)...)
	}
	if len(good) == 0 {
		return
	}
	stored, err := c.store.InsertBatch(ctx, rows)
	if err == nil {
		err = c.publish(ctx, stored)
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

// publish sends each notification to its user's NOTIFY subject and waits
// for every ack.
func (c *Consumer) publish(ctx context.Context, rows []store.Row) error {
	futures := make([]jetstream.PubAckFuture, 0, len(rows))
	for _, r := range rows {
		msg, err := NotificationMessage(r)
		if err != nil {
			return err
		}
		f, err := c.js.PublishMsgAsync(msg)
		if err != nil {
			return fmt.Errorf("publish notification %s: %w", r.ID, err)
		}
		futures = append(futures, f)
	}
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
