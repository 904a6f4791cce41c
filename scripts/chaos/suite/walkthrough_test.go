package suite

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/pkg/webhook"
	"github.com/xpeditis/notify/scripts/chaos/cluster"
)

// `make cluster` as a new user meets it: the production topology behind
// HAProxy on one port, and the README's walkthrough through that port
// only: its REST steps as written, socket.io-client with its default
// transports (polling, then WebSocket) and with long-polling alone (which
// works only if the proxy keeps a session on one gateway), a webhook
// created through the proxy and delivered to a real receiver, a 404 for
// paths no service serves, and no /metrics.
func TestTheWalkthroughWorksOnOneOriginThroughTheProxy(t *testing.T) {
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c, proxy, err := cluster.Up(ctx, cluster.Options{Root: root}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	api := proxy.URL

	t.Run("the README's REST walkthrough", func(t *testing.T) {
		env := filepath.Join(t.TempDir(), "client.env")
		if err := c.WriteClientEnv(env, api); err != nil {
			t.Fatal(err)
		}
		// As the README's `make cluster` section says: load the file, then
		// run the walkthrough as written.
		script := "set -a; . " + env + "; set +a\n" + testkit.READMEWalkthrough(t, filepath.Join(root, "README.md"))
		cmd := exec.CommandContext(ctx, "sh", "-e", "-c", script)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "API=", "NATS_URL=", "JWT_SECRET=", "JWT_ISSUER=", "JWT_AUDIENCE=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if got := strings.TrimSpace(string(out)); !strings.HasSuffix(got, `{"unreadCount":0}`) {
			t.Fatalf("the walkthrough does not end with {\"unreadCount\":0}:\n%s", got)
		}
	})

	t.Run("Socket.IO and a webhook", func(t *testing.T) {
		const user, walkOrg = "walk-user", "walk-org"
		secret := webhook.GenerateSecret()
		recv, err := startReceiver(secret)
		if err != nil {
			t.Fatal(err)
		}
		defer recv.Close()
		if err := createWebhookAt(ctx, c, []string{api}, walkOrg, recv.URL(), secret); err != nil {
			t.Fatal(err)
		}
		b, err := startBrowsers(root)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		tok, err := c.Token(user, walkOrg, "MEMBER", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		tabs := map[string][]string{"default-transports": nil, "polling-only": {"polling"}}
		for name, transports := range tabs {
			if err := b.open(name, user, api, tok, transports); err != nil {
				t.Fatal(err)
			}
		}
		if err := wait(ctx, 30*time.Second, "both tabs connected", func() error {
			if n := b.connected(); n < len(tabs) {
				return fmt.Errorf("%d of %d connected; %v", n, len(tabs), b.snapshot())
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		pub := exec.CommandContext(ctx, filepath.Join(root, "bin", "notifyctl"), "publish", "-wait",
			"-type", "BOOKING_CREATED", "-org", walkOrg, "-user", user, "-data", `{"bookingId":"BK-PROXY"}`)
		pub.Env = append(os.Environ(), "NATS_URL="+c.NATSURL())
		out, err := pub.Output()
		if err != nil {
			t.Fatalf("notifyctl publish: %v", err)
		}
		event := strings.TrimSpace(string(out))
		if err := wait(ctx, 30*time.Second, "the notification on both tabs and the webhook at the receiver", func() error {
			var missing []string
			for name := range tabs {
				if _, ok := b.arrival(name, event); !ok {
					missing = append(missing, "tab "+name)
				}
			}
			if !recv.has(event) {
				missing = append(missing, "webhook")
			}
			if len(missing) > 0 {
				return fmt.Errorf("event %s not yet at %v", event, missing)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for name, tb := range b.snapshot() {
			if len(tb.errors) > 0 || len(tb.connects) != 1 {
				t.Errorf("tab %s: %d connects, connect errors %q", name, len(tb.connects), tb.errors)
			}
		}
		if _, bad := recv.snapshot(); bad > 0 {
			t.Errorf("%d webhook requests with a bad signature", bad)
		}
	})

	t.Run("the public documents of both APIs", func(t *testing.T) {
		for _, path := range []string{"/api/v1/openapi.json", "/api/v1/webhooks/openapi.json", "/api/v1/webhook-events"} {
			if status, body := get(t, api+path, nil); status != http.StatusOK {
				t.Errorf("GET %s: %d %s, want 200", path, status, body)
			}
		}
	})

	t.Run("paths no service serves", func(t *testing.T) {
		for _, path := range []string{"/", "/unknown", "/metrics", "/healthz", "/readyz", "/api/v1/other",
			"/api/v1/notificationsx", "/api/v1/webhook-eventsx", "/api/v1/notifications/../../metrics", "/api/v1/notifications/%2e%2e/%2e%2e/metrics",
			"/api/v1/webhooks/..%2f..%2fmetrics", "//metrics", "/socket.io/../metrics"} {
			status, body := get(t, api+path, nil)
			if status != http.StatusNotFound {
				t.Errorf("GET %s: %d %s, want 404", path, status, body)
			}
		}
		for _, r := range c.Replicas() {
			if status, _ := get(t, r.URL+"/metrics", nil); status != http.StatusOK {
				t.Errorf("%s serves no /metrics (%d) on its own port: the 404 above proves nothing", r.Name(), status)
			}
		}
	})

	t.Run("one origin needs no CORS, and another origin gets none", func(t *testing.T) {
		for _, path := range []string{"/api/v1/notifications", "/api/v1/webhooks"} {
			for origin, want := range map[string]string{api: api, "https://evil.example": ""} {
				req, _ := http.NewRequest(http.MethodOptions, api+path, nil)
				req.Header.Set("Origin", origin)
				req.Header.Set("Access-Control-Request-Method", "GET")
				req.Header.Set("Access-Control-Request-Headers", "authorization")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if got := resp.Header.Get("Access-Control-Allow-Origin"); got != want {
					t.Errorf("preflight of %s from %s: Access-Control-Allow-Origin %q, want %q", path, origin, got, want)
				}
			}
		}
	})
}

func get(t testing.TB, url string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp.StatusCode, string(b)
}
