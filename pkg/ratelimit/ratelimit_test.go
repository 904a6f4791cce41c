package ratelimit_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/xpeditis/notify/pkg/problem"
	"github.com/xpeditis/notify/pkg/ratelimit"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time                 { return c.t }
func (c *clock) advance(d time.Duration)        { c.t = c.t.Add(d) }
func newClock() *clock                          { return &clock{t: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)} }
func allow(l *ratelimit.Limiter, k string) bool { ok, _ := l.Allow(k); return ok }

func TestABurstIsAllowedThenOneTokenPerInterval(t *testing.T) {
	c := newClock()
	l := ratelimit.New(ratelimit.Limit{PerMinute: 60, Burst: 3}, 0, c.now)
	for i := range 3 {
		if !allow(l, "u") {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := l.Allow("u")
	if ok || wait != time.Second {
		t.Fatalf("fourth request: %v, wait %v; want refused for 1s", ok, wait)
	}
	if !allow(l, "other") {
		t.Fatal("another key is limited by the first one's requests")
	}
	c.advance(500 * time.Millisecond)
	if ok, wait := l.Allow("u"); ok || wait != 500*time.Millisecond {
		t.Fatalf("after 0.5s: %v, wait %v", ok, wait)
	}
	c.advance(500 * time.Millisecond)
	if !allow(l, "u") || allow(l, "u") {
		t.Fatal("after 1s exactly one more request should pass")
	}
	c.advance(time.Hour)
	for i := range 3 {
		if !allow(l, "u") {
			t.Fatalf("after an hour idle, request %d refused: the bucket should be full, not fuller", i+1)
		}
	}
	if allow(l, "u") {
		t.Fatal("an idle bucket filled past its burst")
	}
}

func TestZeroPerMinuteTurnsTheLimitOff(t *testing.T) {
	l := ratelimit.New(ratelimit.Limit{}, 0, nil)
	for range 1000 {
		if !allow(l, "u") {
			t.Fatal("refused with the limit off")
		}
	}
	if l.Keys() != 0 {
		t.Fatalf("%d keys tracked with the limit off", l.Keys())
	}
}

// Memory stays bounded whatever the number of keys: idle (full) buckets are
// dropped first, and a busy key keeps its state while others come and go.
func TestKeysAreBounded(t *testing.T) {
	c := newClock()
	l := ratelimit.New(ratelimit.Limit{PerMinute: 60, Burst: 2}, 100, c.now)
	allow(l, "busy")
	allow(l, "busy")
	for i := range 10_000 {
		allow(l, fmt.Sprint("k", i))
		if n := l.Keys(); n > 100 {
			t.Fatalf("%d keys after %d, want at most 100", n, i)
		}
	}
	c.advance(10 * time.Second) // every bucket is full again, so idle
	allow(l, "fresh")
	if n := l.Keys(); n > 2 {
		t.Fatalf("%d keys left after the idle sweep, want at most 2", n)
	}
}

func TestMiddlewareAnswers429WithRetryAfter(t *testing.T) {
	c := newClock()
	l := ratelimit.New(ratelimit.Limit{PerMinute: 6, Burst: 1}, 0, c.now)
	e := echo.New()
	e.HTTPErrorHandler = problem.ErrorHandler(slog.New(slog.DiscardHandler))
	e.POST("/x", func(c *echo.Context) error { return c.NoContent(http.StatusNoContent) }, l.Middleware("tests", func(*echo.Context) string { return "org" }))
	do := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/x", nil))
		return rec
	}
	if rec := do(); rec.Code != http.StatusNoContent {
		t.Fatalf("first: %d", rec.Code)
	}
	rec := do()
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "10" || !strings.HasPrefix(rec.Header().Get("Content-Type"), problem.ContentType) ||
		!strings.Contains(rec.Body.String(), "too many tests") {
		t.Fatalf("second: %d Retry-After %q %s %s", rec.Code, rec.Header().Get("Retry-After"), rec.Header().Get("Content-Type"), rec.Body)
	}
}
