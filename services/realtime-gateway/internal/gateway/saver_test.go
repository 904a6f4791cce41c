package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/recovery"
)

// TestDisconnectBurstSavesEverySession closes more sessions at once than the
// old fixed queue held, from many goroutines as connections do, and checks
// that every record reaches the KV bucket.
func TestDisconnectBurstSavesEverySession(t *testing.T) {
	const sessions = 6000
	n := testkit.StartNATS(t)
	ctx := context.Background()
	store, err := recovery.Open(ctx, n.JS, time.Minute, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{ShutdownGrace: 30 * time.Second}, testkit.Logger(), nil, nil, store, nil, prometheus.NewRegistry())
	for range saveWorkers {
		s.savers.Go(s.saveLoop)
	}

	var wg sync.WaitGroup
	for g := range 100 {
		wg.Go(func() {
			for i := g; i < sessions; i += 100 {
				s.queueSave(saveRequest{pid: pid(i), sess: recovery.Session{User: fmt.Sprint("user-", i), SID: fmt.Sprint("sid-", i), Start: 1, Disconnected: time.Now().UnixMilli()}})
			}
		})
	}
	wg.Wait()
	start := time.Now()
	s.saves.close()
	if !waitFor(&s.savers, 30*time.Second) {
		t.Fatal("savers did not drain the queue")
	}
	t.Logf("%d sessions saved in %v after the burst", sessions, time.Since(start))
	if got := testutil.ToFloat64(s.metrics.recoverySaveErr); got != 0 {
		t.Fatalf("%v sessions were not saved", got)
	}

	kv, err := n.JS.KeyValue(ctx, recovery.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Values() != sessions {
		t.Fatalf("bucket holds %d records, want %d", st.Values(), sessions)
	}
	for _, i := range []int{0, 1, sessions / 2, sessions - 1} {
		e, err := kv.Get(ctx, pid(i))
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		var got recovery.Session
		if err := json.Unmarshal(e.Value(), &got); err != nil || got.User != fmt.Sprint("user-", i) {
			t.Fatalf("record %d = %s (%v)", i, e.Value(), err)
		}
	}
	// A closed queue refuses records instead of keeping them unsaved.
	s.queueSave(saveRequest{pid: pid(sessions), sess: recovery.Session{User: "late"}})
	if got := testutil.ToFloat64(s.metrics.recoverySaveErr); got != 1 {
		t.Fatalf("a record queued after shutdown was not counted as lost: %v", got)
	}
}

func pid(i int) string { return fmt.Sprintf("pid-%06d", i) }

func TestSaveQueueBounded(t *testing.T) {
	q := newSaveQueue(3)
	for i := range 3 {
		if !q.push(saveRequest{pid: pid(i)}) {
			t.Fatalf("push %d refused below the limit", i)
		}
	}
	if q.push(saveRequest{pid: pid(3)}) {
		t.Fatal("push accepted past the limit")
	}
	if r, ok := q.pop(); !ok || r.pid != pid(0) {
		t.Fatalf("pop = %q, %v; want the oldest", r.pid, ok)
	}
	if !q.push(saveRequest{pid: pid(3)}) {
		t.Fatal("push refused after a pop made room")
	}
	q.close()
	for i := 1; i <= 3; i++ {
		if r, ok := q.pop(); !ok || r.pid != pid(i) {
			t.Fatalf("pop after close = %q, %v; want %s", r.pid, ok, pid(i))
		}
	}
	if _, ok := q.pop(); ok {
		t.Fatal("pop returned a record from a closed, empty queue")
	}
}
