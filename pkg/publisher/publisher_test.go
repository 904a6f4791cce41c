package publisher_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xpeditis/notify/pkg/health"

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

// A publish that finds no stream to answer it (what a leader election, or
// a producer started before the services set the streams up, looks like)
// is tried again until the stream answers: here it is created 1.5 s after
// the publish began, longer than nats.go's own retries wait.
func TestPublishWaitsForTheStreamToAnswer(t *testing.T) {
	srv, err := natsx.RunEmbedded(natsx.EmbeddedOptions{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1", Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	created := make(chan error, 1)
	time.AfterFunc(1500*time.Millisecond, func() {
		created <- natsx.EnsureStreams(ctx, js, testkit.StreamsConfig(), health.New(testkit.Logger(), prometheus.NewRegistry(), health.Remind))
	})
	ack, err := publisher.New(js).Publish(ctx, &contract.Event{Id: "early", Type: "BOOKING_CREATED", OrganizationId: "org-1", Recipients: []string{"u"}})
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("publish before the stream existed: %v", err)
	}
	if ack.Stream != natsx.StreamEvents || ack.Duplicate {
		t.Fatalf("ack %+v", ack)
	}
}

func TestTransientErrorsAreThoseOfAMissingLeaderOrAnswer(t *testing.T) {
	for err, want := range map[error]bool{
		nats.ErrNoResponders:          true,
		jetstream.ErrNoStreamResponse: true,
		context.DeadlineExceeded:      true,
		&jetstream.APIError{Code: 503, Description: "temporarily unavailable"}: true,
		&jetstream.APIError{Code: 400, Description: "bad request"}:             false,
		nats.ErrPermissionViolation:                                            false,
		context.Canceled:                                                       false,
	} {
		if got := publisher.Transient(err); got != want {
			t.Errorf("Transient(%v) = %v, want %v", err, got, want)
		}
	}
}
