package notifyd_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xpeditis/notify/deploy/standalone/notifyd"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/webhook-dispatcher/webhookdispatcher"
)

// startNotifyd runs notifyd in this process, in the given mode, on a fresh
// database, a private JetStream store and a free port, and stops it at
// cleanup. It returns the base URL.
func startNotifyd(t testing.TB, mode string) string {
	t.Helper()
	env := config.FromMap(map[string]string{
		"NOTIFY_MODE":  mode,
		"DATABASE_URL": testkit.Database(t),
		"DATA_DIR":     t.TempDir(),
		"NATS_LISTEN":  "off",
		"JWT_SECRET":   testkit.JWTSecret,
		"LOG_LEVEL":    "warn",
		// Production mode has no development key.
		"WEBHOOK_SECRETS_KEYS": webhookdispatcher.NewSecretKeySpec("test1"),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- notifyd.Run(ctx, env, os.Stderr, notifyd.RunOptions{Listener: ln}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("notifyd: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("notifyd did not stop within 30s")
		}
	})
	base := "http://" + ln.Addr().String()
	testkit.Eventually(t, 30*time.Second, "notifyd ready", func() bool {
		select {
		case err := <-done:
			t.Fatalf("notifyd stopped: %v", err)
		default:
		}
		return status(t, http.MethodGet, base+"/readyz") == http.StatusOK
	})
	return base
}

func status(t testing.TB, method, url string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// The demo page in headless Chromium (demo/e2e/demo.test.mjs): publish an
// event from the page and see it arrive live in two tabs of the user, mark
// it read, and see the other tab follow.
func TestDemoPageInChromium(t *testing.T) {
	base := startNotifyd(t, "development")
	env := []string{"DEMO_URL=" + base}
	if shot := os.Getenv("DEMO_SCREENSHOT"); shot != "" {
		env = append(env, "SCREENSHOT="+shot)
	}
	testkit.BrowserTest(t, "../demo/e2e", "demo.test.mjs", 3*time.Minute, env...)
}

// The demo page and its token endpoint exist only in development mode.
func TestProductionModeHasNoDemoOrDevelopmentEndpoints(t *testing.T) {
	base := startNotifyd(t, "production")
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/"},
		{http.MethodGet, "/demo/app.js"},
		{http.MethodGet, "/dev/config"},
		{http.MethodPost, "/dev/token"},
		{http.MethodPost, "/dev/events"},
	} {
		if got := status(t, r.method, base+r.path); got != http.StatusNotFound {
			t.Errorf("%s %s = %d in production mode, want 404", r.method, r.path, got)
		}
	}
	if got := status(t, http.MethodGet, base+"/healthz"); got != http.StatusOK {
		t.Fatalf("GET /healthz = %d", got)
	}
}
