package recovery_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/hub"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/recovery"
)

const perUserLimit = 3

// setup runs JetStream with a NOTIFY stream that keeps perUserLimit
// messages per user, so that trimming is easy to provoke.
func setup(t *testing.T) (*testkit.NATS, *recovery.Store) {
	t.Helper()
	n := testkit.StartNATS(t)
	ctx := context.Background()
	s, err := n.JS.Stream(ctx, natsx.StreamNotify)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxMsgsPerSubject = perUserLimit
	if _, err := n.JS.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	store, err := recovery.Open(ctx, n.JS, time.Minute, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	return n, store
}

func publish(t *testing.T, n *testkit.NATS, user, id string) uint64 {
	t.Helper()
	body, _ := json.Marshal(contract.UserMessage{Event: contract.UserEventNotification, Data: json.RawMessage(`{"id":"` + id + `"}`)})
	ack, err := n.JS.Publish(context.Background(), contract.NotifySubject(user), body)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func TestComplete(t *testing.T) {
	n, store := setup(t)
	ctx := context.Background()
	beforeAll := time.Now().Add(-time.Second)
	a1 := publish(t, n, "alice", "a1")
	publish(t, n, "bob", "b1")
	a2 := publish(t, n, "alice", "a2")
	for name, tc := range map[string]struct {
		user string
		p    recovery.Point
		want bool
	}{
		"after a retained message":           {"alice", recovery.Point{After: a1}, true},
		"after the latest":                   {"alice", recovery.Point{After: a2}, true},
		"an offset past the stream":          {"alice", recovery.Point{After: 1 << 40}, false},
		"since a time before every message":  {"alice", recovery.Point{Since: beforeAll}, true},
		"a user with no messages, by offset": {"carol", recovery.Point{After: a1}, true},
		"a user with no messages, by time":   {"carol", recovery.Point{Since: beforeAll}, true},
	} {
		got, err := store.Complete(ctx, tc.user, tc.p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got != tc.want {
			t.Errorf("%s: Complete = %v, want %v", name, got, tc.want)
		}
	}

	// Two more messages trim a1 (the per-user limit is 3). After a2, which
	// is retained, the history is whole; after a1 it cannot be shown whole
	// (a message between a1 and a2 could have been trimmed too).
	publish(t, n, "alice", "a3")
	publish(t, n, "alice", "a4")
	for name, tc := range map[string]struct {
		p    recovery.Point
		want bool
	}{
		"after the retained a2":         {recovery.Point{After: a2}, true},
		"after the trimmed a1":          {recovery.Point{After: a1}, false},
		"since before the trimmed a1":   {recovery.Point{Since: beforeAll}, false},
		"since after a trimmed message": {recovery.Point{Since: time.Now().Add(time.Minute)}, true},
	} {
		if got, err := store.Complete(ctx, "alice", tc.p); err != nil || got != tc.want {
			t.Errorf("%s: Complete = %v, %v; want %v", name, got, err, tc.want)
		}
	}
}

func TestReplayInOrderAfterPoint(t *testing.T) {
	n, store := setup(t)
	ctx := context.Background()
	a1 := publish(t, n, "alice", "a1")
	publish(t, n, "bob", "b1")
	publish(t, n, "alice", "a2")
	bad, err := n.JS.Publish(ctx, contract.NotifySubject("alice"), []byte("not json"))
	if err != nil {
		t.Fatal(err)
	}
	publish(t, n, "alice", "a3")

	var got []string
	var seqs []uint64
	err = store.Replay(ctx, "alice", recovery.Point{After: a1}, func(m *hub.Message) error {
		seqs = append(seqs, m.Seq)
		if m.Skipped() {
			got = append(got, "skip")
			return nil
		}
		var d struct{ ID string }
		_ = json.Unmarshal(m.Data, &d)
		got = append(got, d.ID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != "a2" || got[1] != "skip" || got[2] != "a3" || seqs[1] != bad.Sequence {
		t.Fatalf("replayed %v at %v, want a2, the undecodable message as a skip, a3", got, seqs)
	}
	// Nothing after the last: no callback.
	last, _ := store.LastOffset(ctx, "alice")
	if err := store.Replay(ctx, "alice", recovery.Point{After: last}, func(*hub.Message) error {
		t.Fatal("replayed something after the last offset")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestSessionsExpireWithTheWindow(t *testing.T) {
	_, store := setup(t)
	ctx := context.Background()
	now := time.Now()
	if err := store.Save(ctx, "pid-1", recovery.Session{User: "alice", SID: "s", Start: now.UnixMilli(), Disconnected: now.UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	if s, ok, err := store.Load(ctx, "pid-1", now.Add(30*time.Second)); err != nil || !ok || s.User != "alice" {
		t.Fatalf("within the window: %+v %v %v", s, ok, err)
	}
	if _, ok, _ := store.Load(ctx, "pid-1", now.Add(2*time.Minute)); ok {
		t.Fatal("past the window the session was still recoverable")
	}
	if _, ok, _ := store.Load(ctx, "unknown", now); ok {
		t.Fatal("an unknown pid was found")
	}
	if _, ok, _ := store.Load(ctx, "bad pid/with.chars", now); ok {
		t.Fatal("an invalid pid was looked up")
	}
	if err := store.Save(ctx, "bad pid", recovery.Session{}); err == nil {
		t.Fatal("an invalid pid was saved")
	}
}
