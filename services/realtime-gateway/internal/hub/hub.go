// Package hub fans a user's live NOTIFY messages out to that user's
// connections: one core-NATS subscription per connected user, shared by all
// of the user's connections on this gateway and dropped with the last one.
// Every subscription feeds one of a few channels (one per core), each read
// by one dispatcher goroutine, so a connected user costs a subscription,
// not a goroutine. A user's messages all go through one dispatcher, in
// order; the dispatchers write to the sockets in parallel.
//
// Each message taken from NATS is traced as one span ("deliver
// live.user.*"), a child of the trace context its NOTIFY headers carry
// (ingest's span of the event), so that a trace shows the push.
package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/tracing"
)

// Sink receives a user's messages. Deliver is called from the dispatcher
// goroutine, in stream order, and must not block.
type Sink interface {
	Deliver(m *Message)
}

// Subscriber is the part of a NATS connection the hub uses.
type Subscriber interface {
	ChanSubscribe(subject string, ch chan *nats.Msg) (*nats.Subscription, error)
	FlushTimeout(timeout time.Duration) error
}

// ErrTooManyConnections is returned by Join when the user is at the limit.
var ErrTooManyConnections = errors.New("too many connections for this user")

// Metrics are the hub's Prometheus series.
type Metrics struct {
	users   prometheus.Gauge
	dropped *prometheus.CounterVec
}

// NewMetrics registers the hub's series.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		users: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gateway_users", Help: "Users with at least one connection (one NATS subscription each).",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_live_messages_dropped_total", Help: "Live messages that could not be delivered, by reason.",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.users, m.dropped)
	return m
}

func (m *Metrics) usersChanged(delta int)       { m.users.Add(float64(delta)) }
func (m *Metrics) messageDropped(reason string) { m.dropped.WithLabelValues(reason).Inc() }

// Hub tracks the connected users of this gateway.
type Hub struct {
	nc      Subscriber
	log     *slog.Logger
	metrics *Metrics
	tracer  trace.Tracer // nil when tracing is off
	limit   int
	in      []chan *nats.Msg // one per dispatcher

	mu    sync.Mutex
	users map[string]*user
	subs  map[*nats.Subscription]*user
}

type user struct {
	id    string
	sub   *nats.Subscription
	sinks []Sink
	ready chan struct{} // closed once the subscription is on the server, then nil (it is a user's largest field)
}

// New returns a hub that allows at most limit connections per user and
// buffers up to buffer messages between NATS and each dispatcher; tr traces
// each message taken.
func New(nc Subscriber, log *slog.Logger, m *Metrics, tr trace.Tracer, limit, buffer int) *Hub {
	if _, off := tr.(noop.Tracer); off {
		// Starting a no-op span still costs its options, attributes and
		// contexts on every message.
		tr = nil
	}
	in := make([]chan *nats.Msg, runtime.GOMAXPROCS(0))
	for i := range in {
		in[i] = make(chan *nats.Msg, buffer)
	}
	return &Hub{
		nc: nc, log: log, metrics: m, tracer: tr, limit: limit,
		in:    in,
		users: make(map[string]*user),
		subs:  make(map[*nats.Subscription]*user),
	}
}

// Join adds a connection of userID. The user's subscription is active on
// the server when Join returns, so nothing published afterwards is missed.
func (h *Hub) Join(userID string, s Sink) error {
	h.mu.Lock()
	u := h.users[userID]
	if u != nil {
		if len(u.sinks) >= h.limit {
			h.mu.Unlock()
			return ErrTooManyConnections
		}
		u.sinks = append(u.sinks, s)
		ready := u.ready
		h.mu.Unlock()
		if ready != nil {
			<-ready
		}
		return nil
	}
	sub, err := h.nc.ChanSubscribe(contract.LiveSubject(userID), h.in[shard(userID, len(h.in))])
	if err != nil {
		h.mu.Unlock()
		return fmt.Errorf("subscribe: %w", err)
	}
	u = &user{id: userID, sub: sub, sinks: []Sink{s}, ready: make(chan struct{})}
	defer func() {
		h.mu.Lock()
		close(u.ready)
		u.ready = nil
		h.mu.Unlock()
	}()
	h.users[userID] = u
	h.subs[sub] = u
	h.mu.Unlock()
	h.metrics.usersChanged(1)
	// A round trip makes sure the server has the subscription before the
	// client is told it is connected.
	if err := h.nc.FlushTimeout(5 * time.Second); err != nil {
		h.Leave(userID, s)
		return fmt.Errorf("subscribe: flush: %w", err)
	}
	return nil
}

// Leave removes a connection; the user's subscription goes with the last.
func (h *Hub) Leave(userID string, s Sink) {
	h.mu.Lock()
	u := h.users[userID]
	if u == nil {
		h.mu.Unlock()
		return
	}
	for i, x := range u.sinks {
		if x == s {
			last := len(u.sinks) - 1
			u.sinks[i] = u.sinks[last]
			u.sinks[last] = nil
			u.sinks = u.sinks[:last]
			break
		}
	}
	if len(u.sinks) > 0 {
		h.mu.Unlock()
		return
	}
	delete(h.users, userID)
	delete(h.subs, u.sub)
	h.mu.Unlock()
	h.metrics.usersChanged(-1)
	if err := u.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
		h.log.Warn("unsubscribe", "err", err)
	}
}

// shard is the dispatcher of a user: the same one for all its messages.
func shard(userID string, n int) int {
	hash := uint32(2166136261) // FNV-1a
	for i := 0; i < len(userID); i++ {
		hash = (hash ^ uint32(userID[i])) * 16777619
	}
	return int(hash % uint32(n))
}

// Run dispatches messages until ctx ends.
func (h *Hub) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, in := range h.in {
		wg.Go(func() {
			var sinks []Sink
			for {
				select {
				case <-ctx.Done():
					return
				case msg := <-in:
					sinks = h.dispatch(ctx, msg, sinks[:0])
					clear(sinks)
				}
			}
		})
	}
	wg.Wait()
}

// dispatch is where a live message enters the gateway: the NATS message of
// one user's stream, decoded once into a Message (its frames encoded once)
// and handed to each of the user's connections (Sink.Deliver, which writes
// it to the socket at once when it can, or queues it for the client's
// writer).
func (h *Hub) dispatch(ctx context.Context, msg *nats.Msg, sinks []Sink) []Sink {
	span := h.startSpan(ctx, msg)
	defer span.End()
	h.mu.Lock()
	u := h.subs[msg.Sub]
	if u != nil {
		sinks = append(sinks, u.sinks...)
	}
	h.mu.Unlock()
	if u == nil {
		return sinks // the user left while the message was queued
	}
	seq, err := strconv.ParseUint(msg.Header.Get(nats.JSSequence), 10, 64)
	if err != nil || seq == 0 {
		h.metrics.messageDropped("no_sequence")
		h.log.Warn("live message without a stream sequence", "subject", msg.Subject)
		return sinks
	}
	last, _ := strconv.ParseUint(msg.Header.Get(nats.JSLastSequence), 10, 64)
	m, err := NewMessage(seq, last, msg.Data)
	if err != nil {
		h.metrics.messageDropped("invalid")
		h.log.Warn("dropping an invalid user message", "subject", msg.Subject, "seq", seq, "err", err)
		// Connections still advance past it, so that the next message is
		// not mistaken for a gap.
		m = Skip(seq, last)
	}
	for _, s := range sinks {
		s.Deliver(m)
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("notify.connections", len(sinks)))
	}
	return sinks
}

// startSpan starts the span of a message taken; a no-op span, for free,
// when tracing is off.
func (h *Hub) startSpan(ctx context.Context, msg *nats.Msg) trace.Span {
	if h.tracer == nil {
		return trace.SpanFromContext(context.Background()) // the no-op span
	}
	_, span := h.tracer.Start(tracing.Extract(ctx, msg.Header), "deliver live.user.*", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(tracing.Messaging(msg.Subject)...))
	return span
}

// Close drops every subscription.
func (h *Hub) Close() {
	h.mu.Lock()
	users := h.users
	h.users = make(map[string]*user)
	h.subs = make(map[*nats.Subscription]*user)
	h.mu.Unlock()
	for _, u := range users {
		_ = u.sub.Unsubscribe()
		h.metrics.usersChanged(-1)
	}
}
