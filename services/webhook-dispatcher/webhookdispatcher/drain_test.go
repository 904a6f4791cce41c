package webhookdispatcher_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/app"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/logx"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/webhook-dispatcher/webhookdispatcher"
)

// logBuffer is a log destination the test reads while the service writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range strings.Split(b.buf.String(), "\n") {
		var rec struct{ Level string }
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Level == "ERROR" {
			out = append(out, l)
		}
	}
	return out
}

// runReplica runs another instance of the service on the harness's NATS
// and database, logging to log; the returned function stops it (SIGTERM)
// and waits.
func (h *harness) runReplica(log *slog.Logger) func() {
	h.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	common := config.Common{
		DatabaseURL: h.dbURL, NATSURL: h.nats.URL, HTTPAddr: ln.Addr().String(), LogLevel: "info",
		Streams: testkit.StreamsConfig(), JWT: testkit.JWTConfig(),
	}
	go func() {
		done <- app.Run(ctx, app.Options{
			Name: webhookdispatcher.Name, Common: common, Log: log, NeedDB: true,
			Services: []app.Builder{webhookdispatcher.New(h.cfg)}, Listener: ln,
			Ready: func(addr string) { ready <- addr }, ShutdownGrace: 10 * time.Second,
		})
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		h.t.Fatal("replica did not start within 30s")
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				h.t.Errorf("replica stopped with: %v", err)
			}
		})
	}
	h.t.Cleanup(stop)
	return stop
}

// Two dispatchers share the event consumer; one is stopped (SIGTERM) while
// events flow. The events it had fetched and not started are handed to the
// other at once: every event has its delivery recorded within 2 s of the
// end of the flow (the ack wait is 7 s here), each once, every delivery
// reaches the receiver, and the stopped one logs no ERROR (its insert in
// flight is finished, not cancelled).
func TestStoppingOneDispatcherMidFlowDelaysNoEventAndLogsNoError(t *testing.T) {
	h := newHarness(t, testConfig(t))
	rcv := newReceiver(t)
	org := testkit.UniqueID("org")
	w := h.createWebhook(token(t, org, "ADMIN"), rcv.srv.URL, "BOOKING_CREATED")
	logsA := &logBuffer{}
	stopA := h.runReplica(logx.New(logsA, "info"))

	const count = 400
	tick := time.NewTicker(2500 * time.Microsecond) // 400 events/s
	defer tick.Stop()
	for i := range count {
		<-tick.C
		h.publish(org, "BOOKING_CREATED", map[string]any{"n": i})
		if i == count/2 {
			go stopA()
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	var rows int
	for {
		if err := h.db.Get(&rows, `SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1`, w.ID); err != nil {
			t.Fatal(err)
		}
		if rows >= count || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rows != count {
		t.Fatalf("2 s after the flow ended, %d deliveries recorded for %d events", rows, count)
	}
	stopA()
	testkit.Eventually(t, 20*time.Second, "every delivery received", func() bool {
		ids := map[string]bool{}
		for _, r := range rcv.requests() {
			ids[r.Header.Get("X-Webhook-Id")] = true
		}
		return len(ids) == count
	})
	if errs := logsA.errors(); len(errs) > 0 {
		t.Errorf("the stopped dispatcher logged %d ERROR lines:\n%s", len(errs), strings.Join(errs, "\n"))
	}
}
