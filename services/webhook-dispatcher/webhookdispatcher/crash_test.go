package webhookdispatcher_test

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/publisher"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/secrets"
)

// process is the webhook-dispatcher binary, run the way an orchestrator
// runs it, so that it can be killed without any chance to clean up.
type process struct {
	t    *testing.T
	bin  string
	env  []string
	base string
	cmd  *exec.Cmd
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

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (p *process) start() {
	p.t.Helper()
	addr := freePort(p.t)
	p.cmd = exec.Command(p.bin)
	p.cmd.Env = append(os.Environ(), append(p.env, "HTTP_ADDR="+addr)...)
	if os.Getenv("TEST_LOGS") != "" {
		p.cmd.Stderr = os.Stderr
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

// SIGKILL the dispatcher while one delivery waits for its retry and another
// is in flight: after a restart the retry happens, the in-flight one is sent
// again once its claim runs out (same X-Webhook-Id), an event published
// during the outage is delivered, and every delivery ends SUCCEEDED.
func TestKilledDispatcherLosesNoDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary")
	}
	nats := testkit.StartNATS(t)
	dbURL := testkit.Database(t)
	p := &process{t: t, bin: buildDispatcher(t), env: []string{
		"DATABASE_URL=" + dbURL, "NATS_URL=" + nats.URL, "JWT_SECRET=" + testkit.JWTSecret, "LOG_LEVEL=warn",
		"WEBHOOK_SECRETS_KEYS=" + secrets.NewKeySpec("k1"), "WEBHOOK_ALLOW_TARGETS=127.0.0.1/32",
		"WEBHOOK_RETRY_BASE=1500ms", "WEBHOOK_CONNECT_TIMEOUT=1s", "WEBHOOK_TIMEOUT=2s",
		"WEBHOOK_LEASE=12s", "WEBHOOK_ACK_WAIT=7s", "WEBHOOK_POLL_INTERVAL=20ms",
	}}
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
		return len(ds) == 1 && ds[0].Status == "PENDING" && len(ds[0].Attempts) == 1
	})
	inFlight := h.publish(org, "PAYMENT_SUCCESS", nil)
	testkit.Eventually(t, 5*time.Second, "a request in flight", func() bool { return stuck.count() == 1 })
	p.kill()
	close(release)

	during := h.publish(org, "PAYMENT_FAILED", nil)
	p.start()
	h.base = p.base

	testkit.Eventually(t, 10*time.Second, "the retry and the event published during the outage", func() bool { return retrying.count() == 3 })
	testkit.Eventually(t, 20*time.Second, "the in-flight delivery to be sent again once its claim ran out", func() bool { return stuck.count() == 2 })
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
	if s[0].Header.Get("X-Webhook-Id") != s[1].Header.Get("X-Webhook-Id") || s[1].Header.Get("X-Webhook-Attempt") != "1" {
		t.Fatalf("re-sent in-flight delivery: id %s then %s, attempt %s", s[0].Header.Get("X-Webhook-Id"), s[1].Header.Get("X-Webhook-Id"), s[1].Header.Get("X-Webhook-Attempt"))
	}
	var body map[string]any
	_ = json.Unmarshal(s[1].Body, &body)
	if body["id"] != inFlight {
		t.Fatalf("re-sent body is for %v, want %s", body["id"], inFlight)
	}
}
