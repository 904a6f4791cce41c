package recovery_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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

// A session is recorded when it is established. While it is connected, any
// gateway may recover it as long as the gateway serving it beats (it lost
// the client before noticing), and for the window after its last beat (it
// was killed); once its end is recorded, for the window after that.
func TestSessionRecoverableWithinTheWindow(t *testing.T) {
	n, serving := setup(t)
	ctx := context.Background()
	other, err := recovery.Open(ctx, n.JS, time.Minute, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sess := recovery.Session{User: "alice", SID: "s", Start: now.UnixMilli(), Conn: "conn-1"}
	rev, err := serving.Put(ctx, "pid-1", sess, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	load := func(s *recovery.Store, at time.Time) bool {
		t.Helper()
		got, ok, err := s.Load(ctx, "pid-1", at)
		if err != nil {
			t.Fatal(err)
		}
		if ok && (got.User != "alice" || got.SID != "s" || got.Start != sess.Start) {
			t.Fatalf("loaded %+v", got)
		}
		return ok
	}
	if !load(serving, now) {
		t.Fatal("the serving gateway does not find its own connected session")
	}
	if load(other, now) {
		t.Fatal("recoverable elsewhere although its gateway never beat")
	}
	if err := serving.Beat(ctx, now); err != nil {
		t.Fatal(err)
	}
	if !load(other, now.Add(59*time.Second)) {
		t.Fatal("not recoverable elsewhere within the window after the last beat")
	}
	if load(other, now.Add(61*time.Second)) {
		t.Fatal("recoverable elsewhere past the window after the last beat")
	}

	sess.Disconnected = now.Add(time.Minute).UnixMilli()
	if _, err := serving.Update(ctx, "pid-1", rev, sess, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if !load(other, now.Add(119*time.Second)) {
		t.Fatal("not recoverable within the window after the recorded disconnect")
	}
	if load(other, now.Add(121*time.Second)) {
		t.Fatal("recoverable past the window after the recorded disconnect")
	}

	rev, err = serving.Put(ctx, "pid-2", recovery.Session{User: "bob", Conn: "conn-2"}, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := serving.Update(ctx, "pid-2", rev, recovery.Session{User: "bob", Conn: "conn-2", Ended: true}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := serving.Load(ctx, "pid-2", now); ok {
		t.Fatal("a session the client ended is recoverable")
	}
	if _, ok, _ := serving.Load(ctx, "unknown", now); ok {
		t.Fatal("an unknown pid was found")
	}
	if _, ok, _ := serving.Load(ctx, "bad pid/with.chars", now); ok {
		t.Fatal("an invalid pid was looked up")
	}
	if _, err := serving.Put(ctx, "bad pid", recovery.Session{}, now); err == nil {
		t.Fatal("an invalid pid was saved")
	}
}

// A connection updates only the record it wrote: once another connection
// has recovered the session, the old one's late end is refused, while its
// own earlier update (a refresh that moved the revision) is not in the way.
func TestUpdateOnlyTheConnectionsOwnRecord(t *testing.T) {
	n, a := setup(t)
	ctx := context.Background()
	b, err := recovery.Open(ctx, n.JS, time.Minute, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	old := recovery.Session{User: "alice", SID: "s", Conn: "conn-a"}
	rev1, err := a.Put(ctx, "pid-1", old, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// A refresh moves the revision; an end queued before it still applies.
	if _, err := a.Update(ctx, "pid-1", rev1, old, now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	ended := old
	ended.Disconnected = now.UnixMilli()
	rev3, err := a.Update(ctx, "pid-1", rev1, ended, time.Time{})
	if err != nil {
		t.Fatalf("the connection's own end after its refresh: %v", err)
	}

	// Gateway b recovers the session; a's late writes are refused.
	if _, err := b.Put(ctx, "pid-1", recovery.Session{User: "alice", SID: "s", Conn: "conn-b"}, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Update(ctx, "pid-1", rev3, ended, time.Time{}); !errors.Is(err, recovery.ErrReplaced) {
		t.Fatalf("a late end of the old connection: %v, want ErrReplaced", err)
	}
	if got, ok, err := b.Load(ctx, "pid-1", now.Add(time.Hour)); err != nil || !ok || got.Conn != "conn-b" || got.Disconnected != 0 {
		t.Fatalf("after the old connection's late end: %+v %v %v, want b's connected record", got, ok, err)
	}
}

// Each record carries its TTL: while connected, the token's expiry plus
// the window; once disconnected, the window; so the bucket itself needs no
// age limit and keeps nothing longer than it can be used.
func TestRecordsCarryTheirTTL(t *testing.T) {
	n, store := setup(t)
	ctx := context.Background()
	kvStream, err := n.JS.Stream(ctx, "KV_"+recovery.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if age := kvStream.CachedInfo().Config.MaxAge; age != 0 {
		t.Fatalf("bucket MaxAge %v: a long session's record would expire while connected", age)
	}
	ttl := func(key string) string {
		t.Helper()
		m, err := kvStream.GetLastMsgForSubject(ctx, "$KV."+recovery.Bucket+"."+key)
		if err != nil {
			t.Fatal(err)
		}
		return m.Header.Get("Nats-TTL")
	}
	sess := recovery.Session{User: "alice", Conn: "c"}
	rev, err := store.Put(ctx, "pid-1", sess, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got := ttl("pid-1"); got != "1h1m0s" {
		t.Fatalf("connected record TTL %q, want the token's hour plus the window", got)
	}
	sess.Disconnected = time.Now().UnixMilli()
	if _, err := store.Update(ctx, "pid-1", rev, sess, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got := ttl("pid-1"); got != "1m0s" {
		t.Fatalf("disconnected record TTL %q, want the window", got)
	}
}

// A bucket made by the previous version (the window as its age limit, no
// per-record TTLs) is updated in place.
func TestOpenUpdatesThePreviousBucket(t *testing.T) {
	n := testkit.StartNATS(t)
	ctx := context.Background()
	if _, err := n.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: recovery.Bucket, TTL: 2 * time.Minute, History: 1, MaxValueSize: 1024, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	store, err := recovery.Open(ctx, n.JS, 2*time.Minute, 1, nil)
	if err != nil {
		t.Fatalf("opening the previous version's bucket: %v", err)
	}
	if _, err := store.Put(ctx, "pid-1", recovery.Session{User: "alice", Conn: "c"}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	kvStream, err := n.JS.Stream(ctx, "KV_"+recovery.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := kvStream.CachedInfo().Config; cfg.MaxAge != 0 || !cfg.AllowMsgTTL {
		t.Fatalf("bucket after the update: MaxAge %v, AllowMsgTTL %v", cfg.MaxAge, cfg.AllowMsgTTL)
	}
}

// BenchmarkPut is the cost a connect adds: recording its session.
func BenchmarkPut(b *testing.B) {
	n := testkit.StartNATS(b)
	store, err := recovery.Open(context.Background(), n.JS, time.Minute, 1, nil)
	if err != nil {
		b.Fatal(err)
	}
	alive := time.Now().Add(time.Hour)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for i := 0; pb.Next(); i++ {
			pid := fmt.Sprintf("pid-%p-%d", pb, i)
			if _, err := store.Put(ctx, pid, recovery.Session{User: "user-1", SID: pid, Start: 1, Conn: pid}, alive); err != nil {
				b.Fatal(err)
			}
		}
	})
}
