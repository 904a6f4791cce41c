package natsx_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/testkit"
)

// The gateway relies on the NOTIFY stream republishing each message on the
// user's live subject with its sequence and the previous sequence of the
// same user, so that gaps are visible.
func TestNotifyRepublishCarriesOffsets(t *testing.T) {
	n := testkit.StartNATS(t)
	sub, err := n.Conn.SubscribeSync(contract.LiveSubject("user-a"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var seqs []uint64
	for _, user := range []string{"user-a", "user-b", "user-a"} {
		ack, err := n.JS.Publish(ctx, contract.NotifySubject(user), []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		if user == "user-a" {
			seqs = append(seqs, ack.Sequence)
		}
	}
	var prev uint64
	for i, want := range seqs {
		msg, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		got, _ := strconv.ParseUint(msg.Header.Get(nats.JSSequence), 10, 64)
		last, _ := strconv.ParseUint(msg.Header.Get(nats.JSLastSequence), 10, 64)
		if got != want || last != prev {
			t.Fatalf("message %d: sequence %d last %d, want %d and %d", i, got, last, want, prev)
		}
		prev = got
	}
}

func TestSubjectTokenEscapesSeparators(t *testing.T) {
	for in, want := range map[string]string{
		"user-7":    "user-7",
		"a.b":       "a%2Eb",
		"*":         "%2A",
		">":         "%3E",
		"":          "%00",
		"é":         "%C3%A9",
		"a b":       "a%20b",
		"ok_id-123": "ok_id-123",
	} {
		if got := contract.SubjectToken(in); got != want {
			t.Errorf("SubjectToken(%q) = %q, want %q", in, got, want)
		}
	}
}

// A poison event whose Term arrives after its ack deadline comes back; the
// second DeadLetter must neither store a second copy nor call it new, or
// the dead-letter counters would count the event twice.
func TestDeadLetterOfARedeliveryIsNotNew(t *testing.T) {
	n := testkit.StartNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := n.JS.Publish(ctx, "events.SYSTEM", []byte(`not json`)); err != nil {
		t.Fatal(err)
	}
	cons, err := n.JS.CreateOrUpdateConsumer(ctx, natsx.StreamEvents, jetstream.ConsumerConfig{
		Durable: "dl-test", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The first delivery is held past its deadline, so the event comes back.
	first, second := fetchOne(t, cons), fetchOne(t, cons)
	for i, want := range []bool{true, false} {
		msg := []jetstream.Msg{first, second}[i]
		fresh, err := natsx.DeadLetter(ctx, n.JS, "dl-test", msg, "cannot decode")
		if err != nil {
			t.Fatal(err)
		}
		if fresh != want {
			t.Errorf("delivery %d: new = %v, want %v", i+1, fresh, want)
		}
	}
	stream, err := n.JS.Stream(ctx, natsx.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := stream.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Fatalf("DEADLETTER holds %v messages (err %v), want 1", info.State.Msgs, err)
	}
}

func fetchOne(t *testing.T, cons jetstream.Consumer) jetstream.Msg {
	t.Helper()
	msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestRedactURLHidesCredentialsOnly(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4223":                             "nats://127.0.0.1:4223",
		"nats://alice:s3cret@nats-1:4222,nats://tok@nats-2": "nats://redacted@nats-1:4222,nats://redacted@nats-2",
		"bob:pw@localhost:4222":                             "redacted@localhost:4222",
	} {
		if got := natsx.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
