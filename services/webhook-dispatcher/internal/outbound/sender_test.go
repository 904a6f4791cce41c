package outbound

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/webhook"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/ssrf"
)

func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// Every target below is refused by the real guard before a connection is
// made; the loopback receiver sees nothing.
func TestSenderRefusesPrivateAddressesOnTheDialledAddress(t *testing.T) {
	srv, hits := countingServer(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	resolve := func(_ context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "localhost":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		case "mapped.example.test":
			return []netip.Addr{netip.MustParseAddr("::ffff:127.0.0.1")}, nil
		default:
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}
	}
	s := NewSender(SenderOptions{ConnectTimeout: time.Second, Timeout: 2 * time.Second, Guard: ssrf.Guard{}, Lookup: resolve})
	defer s.Close()
	targets := map[string]string{
		"http://127.0.0.1:" + port + "/":             "loopback",
		"http://localhost:" + port + "/":             "loopback",
		"http://[::1]:" + port + "/":                 "loopback",
		"http://10.0.0.1:" + port + "/":              "private",
		"http://169.254.169.254/latest/meta-data":    "cloud metadata",
		"http://[::ffff:127.0.0.1]:" + port + "/":    "loopback",
		"http://loopback.example.test:" + port + "/": "loopback",
		"http://mapped.example.test:" + port + "/":   "loopback",
	}
	for target, why := range targets {
		out := s.Send(t.Context(), target, Signing{Secret: "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ="}, webhook.Delivery{ID: "d", Event: "E", Timestamp: time.Now(), Attempt: 1}, []byte(`{}`))
		if out.Kind != Refused || out.Retryable() || !strings.HasPrefix(out.Reason(), "refused") || !strings.Contains(out.Reason(), why) {
			t.Errorf("%s: outcome %+v, want refused as %s", target, out, why)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the receiver got %d requests", hits.Load())
	}
}

// A redirect is answered as a failure and never followed, so it cannot lead
// to a private address even from an allowed one.
func TestSenderDoesNotFollowRedirects(t *testing.T) {
	inner, innerHits := countingServer(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	for _, location := range []string{"http://169.254.169.254/latest/meta-data", "http://10.0.0.1/", inner.URL + "/internal"} {
		outer, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, location, http.StatusFound)
		})
		allowOuter := ssrf.Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
		s := NewSender(SenderOptions{ConnectTimeout: time.Second, Timeout: 2 * time.Second, Guard: allowOuter})
		out := s.Send(t.Context(), outer.URL, Signing{Secret: "secret-secret-secret"}, webhook.Delivery{ID: "d", Event: "E", Timestamp: time.Now(), Attempt: 1}, []byte(`{}`))
		s.Close()
		if out.Kind != Redirect || out.StatusCode != http.StatusFound || out.Reason() != "redirects are not followed" || out.Attempt(1, false).Outcome != "redirect" {
			t.Errorf("redirect to %s: outcome %+v", location, out)
		}
	}
	if innerHits.Load() != 0 {
		t.Fatalf("the redirect target got %d requests", innerHits.Load())
	}
}

func TestSenderTimesOutAndBoundsTheExcerpt(t *testing.T) {
	release := make(chan struct{})
	slow, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	big, _ := countingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(strings.Repeat("é", 10_000))) // multi-byte runes cut at 4 KB
	})
	s := NewSender(SenderOptions{ConnectTimeout: time.Second, Timeout: 300 * time.Millisecond, Guard: ssrf.Guard{AllowPrivate: true}})
	defer s.Close()
	d := webhook.Delivery{ID: "d", Event: "E", Timestamp: time.Now(), Attempt: 1}
	out := s.Send(t.Context(), slow.URL, Signing{Secret: "secret-secret-secret"}, d, []byte(`{}`))
	if out.Kind != Timeout || !out.Retryable() || out.Reason() != "timeout: no complete answer within 300ms" || out.Duration < 300*time.Millisecond || out.Duration > 2*time.Second {
		t.Fatalf("slow endpoint: %+v", out)
	}
	out = s.Send(t.Context(), big.URL, Signing{Secret: "secret-secret-secret"}, d, []byte(`{}`))
	if !out.Success() || len(out.Excerpt) > MaxExcerpt+3 || !strings.HasPrefix(out.Excerpt, "éé") {
		t.Fatalf("big response: success %v, excerpt %d bytes", out.Success(), len(out.Excerpt))
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	cases := map[string]time.Duration{
		"": 0, "0": 0, "-5": 0, "abc": 0, "120": 2 * time.Minute,
		"Fri, 27 Nov 2026 10:00:30 GMT": 30 * time.Second,
		"Fri, 27 Nov 2026 09:00:00 GMT": 0,
	}
	for in, want := range cases {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}
