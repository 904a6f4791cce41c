// Package publisher is how a Go producer publishes domain events: it
// validates the event against the contract, then publishes its JSON form on
// events.<type> with the event id as Nats-Msg-Id, so that JetStream drops
// duplicates within its window and consumers drop the rest.
package publisher

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xpeditis/notify/pkg/backoff"
	"github.com/xpeditis/notify/pkg/contract"
)

// retry paces the attempts of a publish that found no stream leader (an
// election, a node restarting or cut off: a few seconds on a cluster).
var retry = backoff.Policy{Base: 100 * time.Millisecond, Max: 2 * time.Second, Jitter: 0.2}

// attemptTimeout bounds one attempt, so that a request lost with a leader
// is sent again rather than waited for until ctx ends.
const attemptTimeout = 3 * time.Second

// Publisher publishes events to JetStream.
type Publisher struct {
	js jetstream.JetStream
}

// New returns a publisher on js.
func New(js jetstream.JetStream) *Publisher { return &Publisher{js: js} }

// Publish validates ev and publishes it, waiting for the stream's ack. A
// publish that finds no stream leader, or gets no answer, is tried again
// with growing pauses until ctx ends: always give it a deadline. Every
// attempt carries the same Nats-Msg-Id, so one that the stream stored but
// whose ack was lost counts once (the ack says Duplicate). Other errors (an
// invalid event, a permission refused) are returned at once.
func (p *Publisher) Publish(ctx context.Context, ev *contract.Event) (*jetstream.PubAck, error) {
	msg, err := Message(ev)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		ack, err := p.js.PublishMsg(actx, msg)
		cancel()
		if err == nil {
			return ack, nil
		}
		if !Transient(err) || ctx.Err() != nil {
			return nil, fmt.Errorf("publish event %s (attempt %d): %w", ev.GetId(), attempt, err)
		}
		t := time.NewTimer(retry.Delay(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("publish event %s (attempt %d): %w", ev.GetId(), attempt, err)
		case <-t.C:
		}
	}
}

// Transient reports whether a publish failed for want of a stream leader
// or of an answer, so that the same message may be sent again.
func Transient(err error) bool {
	var api *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, nats.ErrConnectionReconnecting):
		return true
	case errors.As(err, &api):
		return api.Code == http.StatusServiceUnavailable
	}
	return false
}

// PublishAsync publishes without waiting; wait on the returned future or on
// js.PublishAsyncComplete(). Load generators use it. It does not retry: a
// future that fails with a Transient error may be published again with the
// same event.
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
