package publisher_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/publisher"
	"github.com/xpeditis/notify/pkg/testkit"
)

func TestPublishValidatesAndDeduplicatesByEventID(t *testing.T) {
	n := testkit.StartNATS(t)
	p := publisher.New(n.JS)
	ctx := context.Background()
	ev := &contract.Event{Id: "ev-1", Type: "BOOKING_CREATED", OrganizationId: "org-1", Recipients: []string{"u"}}
	first, err := p.Publish(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.Publish(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if first.Duplicate || !again.Duplicate || again.Sequence != first.Sequence {
		t.Fatalf("first %+v, again %+v: the second publish must be a duplicate", first, again)
	}
	stream, _ := n.JS.Stream(ctx, natsx.StreamEvents)
	msg, err := stream.GetMsg(ctx, first.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "events.BOOKING_CREATED" || msg.Header.Get(nats.MsgIdHdr) != "ev-1" {
		t.Fatalf("stored %s with id %q", msg.Subject, msg.Header.Get(nats.MsgIdHdr))
	}
	if _, err := contract.Decode(msg.Data); err != nil {
		t.Fatalf("stored body does not decode: %v", err)
	}
	if _, err := p.Publish(ctx, &contract.Event{Id: "x", Type: "NOPE", OrganizationId: "o"}); !contract.IsInvalid(err) {
		t.Fatalf("invalid event published: %v", err)
	}
}
