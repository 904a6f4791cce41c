// Package publisher is how a Go producer publishes domain events: it
// validates the event against the contract, then publishes its JSON form on
// events.<type> with the event id as Nats-Msg-Id, so that JetStream drops
// duplicates within its window and consumers drop the rest.
package publisher

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xpeditis/notify/pkg/contract"
)

// Publisher publishes events to JetStream.
type Publisher struct {
	js jetstream.JetStream
}

// New returns a publisher on js.
func New(js jetstream.JetStream) *Publisher { return &Publisher{js: js} }

// Publish validates ev and publishes it, waiting for the stream's ack.
func (p *Publisher) Publish(ctx context.Context, ev *contract.Event) (*jetstream.PubAck, error) {
	msg, err := Message(ev)
	if err != nil {
		return nil, err
	}
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
