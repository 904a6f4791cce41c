// Package publisher is how a Go producer publishes domain events: it
// validates the event against the contract, then publishes its JSON form on
// events.<type> with the event id as Nats-Msg-Id, so that JetStream drops
// duplicates within its window and consumers drop the rest.
//
// The trace context of the publishing call travels with the event as the
// W3C traceparent header: the services continue the producer's trace, so
// that one event can be followed through ingest, the realtime push and
// each webhook attempt.
package publisher

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/tracing"
)

// Publisher publishes events to JetStream.
type Publisher struct {
	js     jetstream.JetStream
	tracer trace.Tracer // nil: no span of its own, the caller's context is passed on
}

// Option configures a Publisher.
type Option func(*Publisher)

// WithTracer makes each Publish record a producer span (the parent of the
// services' spans) with tr, e.g. otel.Tracer("…") of the producer's own
// OpenTelemetry set-up. Without it the publisher records nothing and
// passes on the trace context the caller's ctx holds, if any.
func WithTracer(tr trace.Tracer) Option { return func(p *Publisher) { p.tracer = tr } }

// New returns a publisher on js.
func New(js jetstream.JetStream, opts ...Option) *Publisher {
	p := &Publisher{js: js}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Publish validates ev and publishes it, waiting for the stream's ack.
func (p *Publisher) Publish(ctx context.Context, ev *contract.Event) (_ *jetstream.PubAck, err error) {
	msg, err := Message(ev)
	if err != nil {
		return nil, err
	}
	if p.tracer != nil {
		var span trace.Span
		ctx, span = p.tracer.Start(ctx, "publish "+msg.Subject, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(append(tracing.Messaging(msg.Subject), semconv.MessagingMessageID(ev.GetId()))...))
		defer func() {
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}()
	}
	tracing.Inject(ctx, msg.Header)
	ack, err := p.js.PublishMsg(ctx, msg)
	if err != nil {
		return nil, fmt.Errorf("publish event %s: %w", ev.GetId(), err)
	}
	return ack, nil
}

// PublishAsync publishes without waiting; wait on the returned future or on
// js.PublishAsyncComplete(). Load generators use it.
func (p *Publisher) PublishAsync(ev *contract.Event) (jetstream.PubAckFuture, error) {
	msg, err := Message(ev)
	if err != nil {
		return nil, err
	}
	return p.js.PublishMsgAsync(msg)
}

// Message builds the NATS message of an event after validating it.
func Message(ev *contract.Event) (*nats.Msg, error) {
	if err := contract.Validate(ev); err != nil {
		return nil, err
	}
	data, err := contract.Encode(ev)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", ev.GetId(), err)
	}
	msg := nats.NewMsg(contract.EventsSubject(ev.GetType()))
	msg.Data = data
	msg.Header.Set(nats.MsgIdHdr, ev.GetId())
	return msg, nil
}
