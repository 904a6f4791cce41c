package webhookdispatcher_test

import (
	"context"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/testkit"
)

// With the real guard and no allowance, literal private targets are refused
// when the webhook is created or changed, with the reason.
func TestPrivateTargetsAreRefusedAtCreateAndUpdate(t *testing.T) {
	cfg := testConfig(t)
	cfg.AllowTargets = nil
	h := newHarness(t, cfg)
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	targets := map[string]string{
		"http://127.0.0.1:9000/hook":                         "loopback",
		"http://localhost:9000/hook":                         "loopback name",
		"http://[::1]/hook":                                  "loopback",
		"http://10.0.0.1/hook":                               "private",
		"http://169.254.169.254/latest/metadata":             "cloud metadata",
		"http://[::ffff:127.0.0.1]/hook":                     "loopback",
		"http://100.64.1.1/":                                 "carrier-grade NAT",
		"http://0.0.0.0/":                                    "unspecified",
		"http://[2002:7f00:1::]/hook":                        "6to4 (an IPv6 tunnel to 127.0.0.1)",
		"http://[2002:a9fe:a9fe::]/latest":                   "6to4 (an IPv6 tunnel to 169.254.169.254)",
		"http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook": "Teredo (an IPv6 tunnel to 127.0.0.1)",
	}
	for target, reason := range targets {
		var p problemOut
		code := h.call(http.MethodPost, "/api/v1/webhooks", admin, map[string]any{"url": target, "events": []string{"BOOKING_CREATED"}}, &p)
		if code != http.StatusBadRequest || !strings.Contains(p.Detail, "not allowed") || !strings.Contains(p.Detail, reason) {
			t.Errorf("create %s: %d %q, want 400 naming %q", target, code, p.Detail, reason)
		}
	}
	w := h.createWebhook(admin, "https://hooks.example.com/x", "RATE_QUOTED")
	var p problemOut
	if code := h.call(http.MethodPatch, "/api/v1/webhooks/"+w.ID, admin, map[string]any{"url": "http://10.1.2.3/"}, &p); code != http.StatusBadRequest {
		t.Errorf("update to a private target: %d %q", code, p.Detail)
	}
}

// A name that resolves to loopback passes creation (it is not a literal)
// but every attempt is refused on the address actually dialled.
func TestNameResolvingToLoopbackIsRefusedAtSendTime(t *testing.T) {
	rcv := newReceiver(t)
	cfg := testConfig(t)
	cfg.AllowTargets = nil
	cfg.MaxAttempts = 1
	cfg.Resolve = func(_ context.Context, host string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil // a DNS answer pointing at us
	}
	h := newHarness(t, cfg)
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	w := h.createWebhook(admin, "http://rebind.example.test:"+itoa(rcv.addr().Port())+"/hook", "BOOKING_CREATED")
	h.publish(org, "BOOKING_CREATED", nil)
	var ds []deliveryOut
	testkit.Eventually(t, 5*time.Second, "the refused attempt to be recorded", func() bool {
		ds = h.deliveries(admin, w.ID)
		return len(ds) == 1 && ds[0].Status == "FAILED"
	})
	if a := ds[0].Attempts[0]; a.StatusCode != 0 || !strings.Contains(a.Error, "refused") || !strings.Contains(a.Error, "127.0.0.1 is loopback") {
		t.Fatalf("attempt = %+v", a)
	}
	if rcv.count() != 0 {
		t.Fatalf("the loopback receiver got %d requests", rcv.count())
	}
	if got := h.webhook(admin, w.ID); got.FailureCount != 1 {
		t.Fatalf("failureCount = %d, want 1", got.FailureCount)
	}
}

// Names that resolve to 6to4 or Teredo addresses tunnelling to loopback or
// the metadata address are refused when dialled, even with 127.0.0.1
// allowed (the test configuration's allowance for its receivers).
func TestNamesResolvingToTunnelAddressesAreRefusedAtSendTime(t *testing.T) {
	rcv := newReceiver(t)
	cfg := testConfig(t)
	cfg.MaxAttempts = 1
	tunnels := map[string]string{
		"sixtofour-loopback.example.test": "2002:7f00:1::",
		"sixtofour-metadata.example.test": "2002:a9fe:a9fe::",
		"teredo-loopback.example.test":    "2001:0:4136:e378:8000:63bf:80ff:fffe",
	}
	cfg.Resolve = func(_ context.Context, host string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr(tunnels[host])}, nil
	}
	h := newHarness(t, cfg)
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	hooks := map[string]string{} // webhook id -> address its name resolves to
	for host, addr := range tunnels {
		w := h.createWebhook(admin, "http://"+host+":"+itoa(rcv.addr().Port())+"/hook", "BOOKING_CREATED")
		hooks[w.ID] = addr
	}
	h.publish(org, "BOOKING_CREATED", nil)
	for id, addr := range hooks {
		var ds []deliveryOut
		testkit.Eventually(t, 5*time.Second, "the refused attempt to "+addr, func() bool {
			ds = h.deliveries(admin, id)
			return len(ds) == 1 && ds[0].Status == "FAILED"
		})
		if a := ds[0].Attempts[0]; a.StatusCode != 0 || !strings.Contains(a.Error, "refused") || !strings.Contains(a.Error, addr+" is ") ||
			!strings.Contains(a.Error, "tunnel to") {
			t.Errorf("%s: attempt = %+v", addr, a)
		}
	}
	if rcv.count() != 0 {
		t.Fatalf("the receiver got %d requests", rcv.count())
	}
}

func itoa(n uint16) string { return strconv.Itoa(int(n)) }
