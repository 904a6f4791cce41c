package notificationapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/logx"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/testkit"
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

// lines counts the log lines by "LEVEL message".
func (b *logBuffer) lines() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		var rec struct{ Level, Msg string }
		if json.Unmarshal([]byte(l), &rec) == nil {
			out[rec.Level+" "+rec.Msg]++
		}
	}
	return out
}

func (b *logBuffer) count(level string) int {
	n := 0
	for k, v := range b.lines() {
		if strings.HasPrefix(k, level+" ") {
			n += v
		}
	}
	return n
}

// A 10 s PostgreSQL outage (a proxy between the service and the database,
// stopped) while events keep coming: the service logs one WARN when it
// starts and one INFO with its length when it ends, no ERROR; /readyz
// names postgres meanwhile; the metrics count it; and every event is
// stored once the database is back.
func TestAPostgreSQLOutageIsOneWarningAndOneEnd(t *testing.T) {
	n := testkit.StartNATS(t)
	dbURL := testkit.Database(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testkit.StartProxy(t, u.Host)
	u.Host = proxy.Addr()
	logs := &logBuffer{}
	base, _ := runService(t, n.URL, u.String(), logx.New(logs, "info"), nil)
	waitReady(t, base, 10*time.Second)
	h := &harness{t: t, nats: n, base: base, pub: newPublisher(n)}
	h.db = openDB(t, dbURL) // the test reads directly, not through the proxy

	var ids []string
	publish := func() {
		ev := event("SYSTEM", "olivia")
		h.publish(ev)
		ids = append(ids, ev.Id)
	}
	publish()
	testkit.Eventually(t, 10*time.Second, "the first event stored", func() bool {
		return h.count(`SELECT count(*) FROM notifications WHERE user_id = 'olivia'`) == 1
	})

	proxy.Stop()
	outage := time.NewTimer(10 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	sawNotReady := false
flow:
	for {
		select {
		case <-tick.C:
			publish()
			if code, body := readyz(base); code == http.StatusServiceUnavailable && strings.Contains(body, `"postgres":`) && !strings.Contains(body, `"postgres":"ok"`) {
				sawNotReady = true
			}
		case <-outage.C:
			break flow
		}
	}
	tick.Stop()
	proxy.Start()
	if !sawNotReady {
		t.Error("/readyz never named postgres during the outage")
	}
	testkit.Eventually(t, 20*time.Second, "every event stored after the outage", func() bool {
		return h.count(`SELECT count(*) FROM notifications WHERE user_id = 'olivia'`) == len(ids)
	})
	waitReady(t, base, 10*time.Second)
	got := logs.lines()
	t.Logf("%d events; log lines: %v", len(ids), got)
	if got["WARN waiting for postgres"] != 1 || got["INFO postgres available"] != 1 {
		t.Errorf("postgres outage lines %v, want one WARN and one INFO", got)
	}
	if e := logs.count("ERROR"); e != 0 {
		t.Errorf("%d ERROR lines during a database outage, want none", e)
	}
	if w := logs.count("WARN"); w > 2 {
		t.Errorf("%d WARN lines, want the outage's one (and at most one more)", w)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var metrics bytes.Buffer
	_, _ = metrics.ReadFrom(resp.Body)
	if !strings.Contains(metrics.String(), `notify_outages_total{dependency="postgres"} 1`) {
		t.Errorf("metrics do not count the outage:\n%s", grepLines(metrics.Bytes(), "outage"))
	}
}

// Two replicas share the ingest consumer; one is stopped (SIGTERM) while
// events flow. Every event is stored and published once, within 2 s of the
// end of the flow (the ack wait is the production 30 s: nothing waits for
// it), and the stopped replica logs no ERROR.
func TestStoppingOneReplicaMidFlowDelaysNoEvent(t *testing.T) {
	n := testkit.StartNATS(t)
	dbURL := testkit.Database(t)
	env := map[string]string{"INGEST_ACK_WAIT": "30s", "INGEST_BATCH": "20", "INGEST_WORKERS": "2"}
	logsA := &logBuffer{}
	baseA, stopA := runService(t, n.URL, dbURL, logx.New(logsA, "info"), env)
	baseB, _ := runService(t, n.URL, dbURL, testkit.Logger(), env)
	waitReady(t, baseA, 10*time.Second)
	waitReady(t, baseB, 10*time.Second)
	h := &harness{t: t, nats: n, pub: newPublisher(n), db: openDB(t, dbURL)}

	const count = 1000
	tick := time.NewTicker(2 * time.Millisecond) // 500 events/s
	defer tick.Stop()
	for i := range count {
		<-tick.C
		ev := event("SYSTEM", fmt.Sprintf("drain-%d", i%10))
		h.publish(ev)
		if i == count/2 {
			go stopA()
		}
	}
	end := time.Now()
	deadline := end.Add(2 * time.Second)
	var stored int
	for {
		stored = h.count(`SELECT count(DISTINCT event_id) FROM notifications WHERE user_id LIKE 'drain-%'`)
		if stored == count || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if stored != count {
		t.Fatalf("2 s after the flow ended, %d of %d events stored", stored, count)
	}
	stopA()
	if rows := h.count(`SELECT count(*) FROM notifications WHERE user_id LIKE 'drain-%'`); rows != count {
		t.Errorf("%d rows for %d events", rows, count)
	}
	published := 0
	for u := range 10 {
		for _, m := range readNotify(t, n, fmt.Sprintf("drain-%d", u)) {
			if m.Event == contract.UserEventNotification {
				published++
			}
		}
	}
	if published != count {
		t.Errorf("%d notifications published on NOTIFY for %d events", published, count)
	}
	if e := logsA.count("ERROR"); e != 0 {
		t.Errorf("the stopped replica logged %d ERROR lines: %v", e, logsA.lines())
	}
}

// A fresh 3-node cluster and four replicas of the service all started at
// the same moment, streams with 3 replicas: every replica is ready within
// 30 s.
func TestReplicasStartedWithAFreshClusterAreAllReadyWithin30s(t *testing.T) {
	cluster := testkit.StartCluster(t, 3)
	dbURL := testkit.Database(t)
	started := time.Now()
	const replicas = 4
	bases := make([]string, replicas)
	for i := range bases {
		bases[i], _ = runService(t, cluster.URL, dbURL, testkit.Logger(), map[string]string{"STREAM_REPLICAS": "3"})
	}
	var wg sync.WaitGroup
	for _, base := range bases {
		wg.Go(func() { waitReady(t, base, 30*time.Second-time.Since(started)) })
	}
	wg.Wait()
	t.Logf("%d replicas ready %s after the cluster and they started", replicas, time.Since(started).Round(time.Millisecond))
	js := clusterJS(t, cluster.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, name := range []string{natsx.StreamEvents, natsx.StreamNotify, natsx.StreamDeadLetter} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if r := s.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("stream %s has %d replicas, want 3", name, r)
		}
	}
}
