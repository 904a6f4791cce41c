package webhookdispatcher_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/xpeditis/notify/pkg/postgres"
	"github.com/xpeditis/notify/pkg/publisher"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/secrets"
)

// process is the webhook-dispatcher binary, run the way an orchestrator
// runs it, so that it can be killed without any chance to clean up, or
// stopped with SIGTERM. Its log is kept for the test to read.
type process struct {
	t    *testing.T
	bin  string
	env  []string
	base string
	cmd  *exec.Cmd
	log  *lockedBuffer
}

func buildDispatcher(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "webhook-dispatcher")
	build := exec.Command("go", "build", "-o", bin, "../cmd/webhook-dispatcher")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	return bin
}

// dispatcherEnv is the environment of a dispatcher process on nats and
// dbURL: the production configuration (leases included) with short retry
// and request timeouts.
func dispatcherEnv(nats *testkit.NATS, dbURL, keys string, extra ...string) []string {
	return append([]string{
		"DATABASE_URL=" + dbURL, "NATS_URL=" + nats.URL, "JWT_SECRET=" + testkit.JWTSecret, "LOG_LEVEL=info",
		"WEBHOOK_SECRETS_KEYS=" + keys, "WEBHOOK_ALLOW_TARGETS=127.0.0.1/32",
		"WEBHOOK_RETRY_BASE=1500ms", "WEBHOOK_CONNECT_TIMEOUT=1s", "WEBHOOK_TIMEOUT=2s",
		"WEBHOOK_ACK_WAIT=7s", "WEBHOOK_POLL_INTERVAL=20ms",
	}, extra...)
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// lockedBuffer collects a process's log lines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the log records (JSON lines) written so far.
func (b *lockedBuffer) lines() []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}

func (p *process) start() {
	p.t.Helper()
	addr := freePort(p.t)
	p.cmd = exec.Command(p.bin)
	p.cmd.Env = append(os.Environ(), append(p.env, "HTTP_ADDR="+addr)...)
	p.log = &lockedBuffer{}
	p.cmd.Stderr = p.log
	if os.Getenv("TEST_LOGS") != "" {
		p.cmd.Stderr = io.MultiWriter(p.log, os.Stderr)
	}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start: %v", err)
	}
	cmd := p.cmd
	p.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p.base = "http://" + addr
	testkit.Eventually(p.t, 30*time.Second, "the dispatcher to be ready", func() bool {
		resp, err := http.Get(p.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func (p *process) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil { // SIGKILL: no shutdown code runs
		p.t.Fatalf("kill: %v", err)
	}
	_ = p.cmd.Wait()
}

// terminate sends SIGTERM, as an orchestrator does on a rolling restart,
// and waits for the process to exit on its own.
func (p *process) terminate(within time.Duration) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			p.t.Fatalf("the dispatcher exited after SIGTERM with %v", err)
		}
	case <-time.After(within):
		p.t.Fatalf("the dispatcher did not exit within %s of SIGTERM", within)
	}
}

// errors are the ERROR records of the process's log.
func (p *process) errors() []string {
	var out []string
	for _, rec := range p.log.lines() {
		if rec["level"] == "ERROR" {
			line, _ := json.Marshal(rec)
			out = append(out, string(line))
		}
	}
	return out
}

func openDB(t *testing.T, url string) *sqlx.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, url, 2)
	if err != nil {
		t.Fatalf("open db: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// attemptLog renders a delivery's attempts as "1:interrupted 2:success".
func attemptLog(d deliveryOut) string {
	var parts []string
	for _, a := range d.Attempts {
		parts = append(parts, fmt.Sprintf("%d:%s", a.Number, a.Outcome))
	}
	return strings.Join(parts, " ")
}

// SIGKILL the dispatcher while one delivery waits for its retry and another
// is in flight: after a restart the retry happens, the in-flight one is sent
// again once the dead process's lease runs out (same X-Webhook-Id, the next
// attempt number, the first logged as interrupted), an event published
// during the outage is delivered, and every delivery ends SUCCEEDED.
func TestKilledDispatcherLosesNoDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary")
	}
	nats := testkit.StartNATS(t)
	dbURL := testkit.Database(t)
	p := &process{t: t, bin: buildDispatcher(t), env: dispatcherEnv(nats, dbURL, secrets.NewKeySpec("k1"))}
	p.start()
	h := &harness{t: t, nats: nats, dbURL: dbURL, pub: publisher.New(nats.JS), base: p.base}

	retrying, stuck := newReceiver(t), newReceiver(t)
	retrying.setAnswer(func(n int) (int, string) {
		if n == 1 {
			return http.StatusInternalServerError, "try later"
		}
		return http.StatusOK, "ok"
	})
	release := make(chan struct{})
	stuck.setAnswer(func(n int) (int, string) {
		if n == 1 {
			<-release // in flight when the dispatcher dies
		}
		return http.StatusOK, "ok"
	})
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	wRetry := h.createWebhook(admin, retrying.srv.URL, "PAYMENT_FAILED")
	wStuck := h.createWebhook(admin, stuck.srv.URL, "PAYMENT_SUCCESS")

	first := h.publish(org, "PAYMENT_FAILED", nil)
	testkit.Eventually(t, 5*time.Second, "a retry to be scheduled", func() bool {
		ds := h.deliveries(admin, wRetry.ID)
		return len(ds) == 1 && ds[0].Status == "PENDING" && attemptLog(ds[0]) == "1:http_error"
	})
	inFlight := h.publish(org, "PAYMENT_SUCCESS", nil)
	testkit.Eventually(t, 5*time.Second, "a request in flight", func() bool { return stuck.count() == 1 })
	p.kill()
	killed := time.Now()
	close(release)

	during := h.publish(org, "PAYMENT_FAILED", nil)
	p.start()
	h.base = p.base

	testkit.Eventually(t, 10*time.Second, "the retry and the event published during the outage", func() bool { return retrying.count() == 3 })
	testkit.Eventually(t, time.Until(killed.Add(10*time.Second)), "the in-flight delivery to be sent again within 10s of the kill", func() bool { return stuck.count() == 2 })
	testkit.Eventually(t, 5*time.Second, "every delivery SUCCEEDED", func() bool {
		a, b := h.deliveries(admin, wRetry.ID), h.deliveries(admin, wStuck.ID)
		return len(a) == 2 && len(b) == 1 && a[0].Status == "SUCCEEDED" && a[1].Status == "SUCCEEDED" && b[0].Status == "SUCCEEDED"
	})
	ids := map[string]int{}
	for _, r := range retrying.requests() {
		var b map[string]any
		_ = json.Unmarshal(r.Body, &b)
		ids[b["id"].(string)]++
	}
	if ids[first] != 2 || ids[during] != 1 {
		t.Fatalf("requests per event: %v", ids)
	}
	s := stuck.requests()
	if s[0].Header.Get("X-Webhook-Id") != s[1].Header.Get("X-Webhook-Id") || s[0].Header.Get("X-Webhook-Attempt") != "1" || s[1].Header.Get("X-Webhook-Attempt") != "2" {
		t.Fatalf("re-sent in-flight delivery: id %s then %s, attempt %s then %s; want the same id, attempts 1 then 2",
			s[0].Header.Get("X-Webhook-Id"), s[1].Header.Get("X-Webhook-Id"), s[0].Header.Get("X-Webhook-Attempt"), s[1].Header.Get("X-Webhook-Attempt"))
	}
	var body map[string]any
	_ = json.Unmarshal(s[1].Body, &body)
	if body["id"] != inFlight {
		t.Fatalf("re-sent body is for %v, want %s", body["id"], inFlight)
	}
	if got := attemptLog(h.deliveries(admin, wStuck.ID)[0]); got != "1:interrupted 2:success" {
		t.Fatalf("log of the re-sent delivery %q; want both requests the receiver saw", got)
	}
}

// Two dispatchers share the work; one is killed (SIGKILL) while a request
// is in flight. The other takes its delivery over within 10 s, sends it as
// attempt 2, and the delivery log has both attempts the receiver saw: the
// first interrupted, the second with its answer. Events keep flowing
// through the survivor, which logs no error.
func TestASurvivingDispatcherTakesOverAKilledOnesDeliveriesWithinTenSeconds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary")
	}
	nats := testkit.StartNATS(t)
	dbURL := testkit.Database(t)
	bin, keys := buildDispatcher(t), secrets.NewKeySpec("k1")
	doomed := &process{t: t, bin: bin, env: dispatcherEnv(nats, dbURL, keys)}
	doomed.start()
	h := &harness{t: t, nats: nats, dbURL: dbURL, pub: publisher.New(nats.JS), base: doomed.base}

	hanging, healthy := newReceiver(t), newReceiver(t)
	release := make(chan struct{})
	hanging.setAnswer(func(n int) (int, string) {
		if n == 1 {
			<-release // the dispatcher sending it is killed meanwhile
		}
		return http.StatusOK, "ok"
	})
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	wHanging := h.createWebhook(admin, hanging.srv.URL, "BOOKING_CREATED")
	wHealthy := h.createWebhook(admin, healthy.srv.URL, "PAYMENT_SUCCESS")

	eventID := h.publish(org, "BOOKING_CREATED", nil)
	testkit.Eventually(t, 5*time.Second, "the request in flight at the first dispatcher", func() bool { return hanging.count() == 1 })
	survivor := &process{t: t, bin: bin, env: dispatcherEnv(nats, dbURL, keys)}
	survivor.start()
	h.base = survivor.base

	doomed.kill()
	killed := time.Now()
	close(release)
	testkit.Eventually(t, 10*time.Second, "the survivor to send the delivery again", func() bool { return hanging.count() == 2 })
	t.Logf("taken over %s after the kill", time.Since(killed).Round(time.Millisecond))

	got := hanging.requests()
	if got[0].Header.Get("X-Webhook-Id") != got[1].Header.Get("X-Webhook-Id") ||
		got[0].Header.Get("X-Webhook-Attempt") != "1" || got[1].Header.Get("X-Webhook-Attempt") != "2" {
		t.Fatalf("requests: id %s attempt %s, then id %s attempt %s; want one delivery, attempts 1 then 2",
			got[0].Header.Get("X-Webhook-Id"), got[0].Header.Get("X-Webhook-Attempt"), got[1].Header.Get("X-Webhook-Id"), got[1].Header.Get("X-Webhook-Attempt"))
	}
	var last string
	testkit.Eventually(t, 5*time.Second, "the log to show both attempts", func() bool {
		ds := h.deliveries(admin, wHanging.ID)
		if len(ds) != 1 {
			return false
		}
		last = fmt.Sprintf("%s %q", ds[0].Status, attemptLog(ds[0]))
		return ds[0].EventID == eventID && ds[0].Status == "SUCCEEDED" && attemptLog(ds[0]) == "1:interrupted 2:success"
	})
	if d := h.deliveries(admin, wHanging.ID)[0]; d.Attempts[0].Error == "" {
		t.Fatalf("the interrupted attempt does not say what happened: %+v (last seen %s)", d.Attempts[0], last)
	}

	for range 5 {
		h.publish(org, "PAYMENT_SUCCESS", nil)
	}
	testkit.Eventually(t, 5*time.Second, "the survivor to deliver new events", func() bool { return healthy.count() == 5 })
	testkit.Eventually(t, 5*time.Second, "the new deliveries SUCCEEDED", func() bool {
		ds := h.deliveries(admin, wHealthy.ID)
		for _, d := range ds {
			if d.Status != "SUCCEEDED" || attemptLog(d) != "1:success" {
				return false
			}
		}
		return len(ds) == 5
	})
	if errs := survivor.errors(); len(errs) > 0 {
		t.Fatalf("the survivor logged errors:\n%s", strings.Join(errs, "\n"))
	}
}

// Two dispatchers share a burst; one gets SIGTERM while it holds queued
// and in-flight deliveries (a rolling restart). It exits at once without an
// error; what it had queued is handed back and sent by the other without a
// wait, so no delivery takes more than 2 s from its creation to its
// request; what it had in flight is answered and recorded; and no receiver
// gets a delivery twice.
func TestSIGTERMHandsQueuedDeliveriesToTheOtherDispatcherAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	nats := testkit.StartNATS(t)
	dbURL := testkit.Database(t)
	db := openDB(t, dbURL)
	bin, keys := buildDispatcher(t), secrets.NewKeySpec("k1")
	// The default lease; lanes of 4 requests, so that deliveries queue.
	env := dispatcherEnv(nats, dbURL, keys, "WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK=4")
	leaving, staying := &process{t: t, bin: bin, env: env}, &process{t: t, bin: bin, env: env}
	leaving.start()
	staying.start()
	h := &harness{t: t, nats: nats, dbURL: dbURL, pub: publisher.New(nats.JS), base: staying.base}

	rcv := newReceiver(t)
	rcv.setAnswer(func(int) (int, string) {
		time.Sleep(50 * time.Millisecond) // the receiver's own work: requests overlap
		return http.StatusOK, "ok"
	})
	const hooks, perHook = 4, 40
	var orgs, admins, ids []string
	for range hooks {
		org := testkit.UniqueID("org")
		admin := token(t, org, "ADMIN")
		orgs, admins = append(orgs, org), append(admins, admin)
		ids = append(ids, h.createWebhook(admin, rcv.srv.URL, "BOOKING_CREATED").ID)
	}
	for i := range hooks * perHook {
		h.publish(orgs[i%hooks], "BOOKING_CREATED", nil)
	}
	// Both hold deliveries when the first one is stopped.
	testkit.Eventually(t, 10*time.Second, "every delivery recorded and both dispatchers holding some", func() bool {
		var rows, holders int
		_ = db.Get(&rows, `SELECT count(*) FROM webhook_deliveries`)
		_ = db.Get(&holders, `SELECT count(DISTINCT holder) FROM webhook_deliveries WHERE holder IS NOT NULL`)
		return rows == hooks*perHook && holders == 2
	})
	stopped := time.Now()
	leaving.terminate(5 * time.Second)
	t.Logf("stopped in %s", time.Since(stopped).Round(time.Millisecond))

	testkit.Eventually(t, 10*time.Second, "every delivery to reach the receiver", func() bool { return rcv.count() >= hooks*perHook })
	var handedBack float64
	for _, rec := range leaving.log.lines() {
		if rec["msg"] == "handed queued deliveries back for other replicas" {
			handedBack, _ = rec["jobs"].(float64)
		}
	}
	if handedBack == 0 {
		t.Fatal("the stopped dispatcher handed nothing back: the test did not stop it while it held queued deliveries")
	}
	t.Logf("%v queued deliveries handed back", handedBack)

	received := map[string][]time.Time{}
	for _, r := range rcv.requests() {
		received[r.Header.Get("X-Webhook-Id")] = append(received[r.Header.Get("X-Webhook-Id")], r.At)
	}
	var created []struct {
		ID        string    `db:"id"`
		CreatedAt time.Time `db:"created_at"`
	}
	if err := db.Select(&created, `SELECT id::text, created_at FROM webhook_deliveries`); err != nil {
		t.Fatal(err)
	}
	var worst time.Duration
	for _, c := range created {
		at := received[c.ID]
		if len(at) != 1 {
			t.Fatalf("delivery %s reached the receiver %d times", c.ID, len(at))
		}
		worst = max(worst, at[0].Sub(c.CreatedAt))
	}
	t.Logf("longest from a delivery's creation to its request: %s", worst.Round(time.Millisecond))
	if worst > 2*time.Second {
		t.Fatalf("a delivery waited %s for its request; want at most 2s across the restart", worst)
	}
	testkit.Eventually(t, 5*time.Second, "every delivery SUCCEEDED with one attempt", func() bool {
		for i, id := range ids {
			ds := h.deliveries(admins[i], id)
			if len(ds) != perHook {
				return false
			}
			for _, d := range ds {
				if d.Status != "SUCCEEDED" || attemptLog(d) != "1:success" {
					return false
				}
			}
		}
		return true
	})
	for name, p := range map[string]*process{"stopped": leaving, "remaining": staying} {
		if errs := p.errors(); len(errs) > 0 {
			t.Fatalf("the %s dispatcher logged errors:\n%s", name, strings.Join(errs, "\n"))
		}
	}
}
