package health_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xpeditis/notify/pkg/health"
	"github.com/xpeditis/notify/pkg/logx"
)

// lines counts the log lines with a message.
func lines(buf *bytes.Buffer) map[string]int {
	out := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec struct{ Level, Msg string }
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Msg != "" {
			out[rec.Level+" "+rec.Msg]++
		}
	}
	return out
}

// Hundreds of failures during an outage are one WARN, reminders at most
// every reminder interval, and one INFO with the outage's length.
func TestAnOutageIsOneWarningRemindersAndOneEnd(t *testing.T) {
	var buf bytes.Buffer
	reg := prometheus.NewRegistry()
	r := health.New(logx.New(&buf, "info"), reg, 100*time.Millisecond)
	pg := r.Condition("postgres")
	pg.OK()
	start := time.Now()
	for time.Since(start) < 350*time.Millisecond {
		pg.Fail(errors.New("connection refused"))
		time.Sleep(time.Millisecond)
	}
	pg.OK()
	pg.OK()
	got := lines(&buf)
	if got["WARN waiting for postgres"] != 1 || got["INFO postgres available"] != 1 {
		t.Fatalf("log lines %v, want one WARN at the start and one INFO at the end", got)
	}
	if n := got["WARN still waiting for postgres"]; n < 2 || n > 3 {
		t.Fatalf("%d reminders in 350 ms at most every 100 ms, want 2 or 3 (%v)", n, got)
	}
	if !strings.Contains(buf.String(), `"outage_seconds":0.3`) {
		t.Errorf("the end does not give the outage's length: %s", buf.String())
	}
	if v := counter(t, reg, "notify_outages_total", "postgres"); v != 1 {
		t.Errorf("notify_outages_total %v, want 1", v)
	}
	if v := counter(t, reg, "notify_outage_seconds_total", "postgres"); v < 0.3 || v > 1 {
		t.Errorf("notify_outage_seconds_total %v, want the outage's 0.35 s", v)
	}
}

// counter is the value of a counter of reg with one dependency label.
func counter(t *testing.T, reg *prometheus.Registry, name, dependency string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == name && m.GetLabel()[0].GetValue() == dependency {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no %s{dependency=%q}", name, dependency)
	return 0
}

// /readyz is ready only when every condition is met, names each one that
// is not with its reason, and is not ready once shutdown began.
func TestReadinessNamesWhatIsNotMet(t *testing.T) {
	r := health.New(logx.Discard(), prometheus.NewRegistry(), time.Minute)
	nats, consumer := r.Condition("nats"), r.Condition("consumer:notification-api")
	nats.OK()
	get := func() (int, map[string]string) {
		w := httptest.NewRecorder()
		r.Ready(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		var body map[string]string
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		return w.Code, body
	}
	if code, body := get(); code != http.StatusServiceUnavailable || body["consumer:notification-api"] != "starting" || body["nats"] != "ok" {
		t.Fatalf("before the consumer runs: %d %v", code, body)
	}
	consumer.OK()
	if code, body := get(); code != http.StatusOK {
		t.Fatalf("all met: %d %v", code, body)
	}
	consumer.Fail(errors.New("consumer notification-api was deleted"))
	if code, body := get(); code != http.StatusServiceUnavailable || body["consumer:notification-api"] != "consumer notification-api was deleted" {
		t.Fatalf("consumer down: %d %v", code, body)
	}
	consumer.OK()
	r.Stopping()
	if code, body := get(); code != http.StatusServiceUnavailable || body["shutdown"] == "" {
		t.Fatalf("shutting down: %d %v", code, body)
	}
}
