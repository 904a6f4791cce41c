// Package ratelimit limits how often one key (a user, an organization) may
// do something cheap to ask and costly to serve: a token bucket per key, in
// the memory of one replica (so N replicas allow up to N times the rate),
// with a bounded number of keys.
package ratelimit

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/xpeditis/notify/pkg/problem"
)

// DefaultMaxKeys bounds the keys a limiter tracks (about 100 bytes each).
const DefaultMaxKeys = 10_000

// Limit is a rate: PerMinute tokens a minute, up to Burst at once. A zero
// PerMinute turns the limit off.
type Limit struct {
	PerMinute int
	Burst     int
}

// Limiter holds one token bucket per key. It is safe for concurrent use.
type Limiter struct {
	limit   Limit
	perSec  float64
	refill  time.Duration // time for an empty bucket to fill up again
	maxKeys int
	now     func() time.Time

	mu        sync.Mutex
	buckets   map[string]bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was computed
}

// New returns a limiter of l tracking at most maxKeys keys (0: DefaultMaxKeys).
// now is the clock (nil: time.Now).
func New(l Limit, maxKeys int, now func() time.Time) *Limiter {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	if now == nil {
		now = time.Now
	}
	if l.Burst < 1 {
		l.Burst = 1
	}
	lim := &Limiter{limit: l, maxKeys: maxKeys, now: now, buckets: map[string]bucket{}}
	if l.PerMinute > 0 {
		lim.perSec = float64(l.PerMinute) / 60
		lim.refill = time.Duration(float64(l.Burst) / lim.perSec * float64(time.Second))
	}
	return lim
}

// Allow takes a token of key's bucket. When there is none it answers false
// and how long until there is one.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	if l.perSec == 0 {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		l.makeRoom(now)
		b = bucket{tokens: float64(l.limit.Burst), at: now}
	} else {
		b.tokens = math.Min(float64(l.limit.Burst), b.tokens+now.Sub(b.at).Seconds()*l.perSec)
		b.at = now
	}
	if b.tokens < 1 {
		l.buckets[key] = b
		return false, time.Duration((1 - b.tokens) / l.perSec * float64(time.Second))
	}
	b.tokens--
	l.buckets[key] = b
	return true, 0
}

// makeRoom keeps the map under maxKeys before a key is added. A bucket
// idle long enough to be full again is the same as no bucket, so those go
// first, in a sweep done at most once a second; if none is idle, an
// arbitrary key is dropped (its next request starts with a full bucket).
func (l *Limiter) makeRoom(now time.Time) {
	if len(l.buckets) < l.maxKeys {
		return
	}
	if now.Sub(l.lastSweep) >= time.Second {
		l.lastSweep = now
		for k, b := range l.buckets {
			if now.Sub(b.at) >= l.refill {
				delete(l.buckets, k)
			}
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < l.maxKeys {
			break
		}
		delete(l.buckets, k)
	}
}

// Keys is how many keys are tracked.
func (l *Limiter) Keys() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// Middleware refuses a request over the limit of its key (what key returns
// for it) with 429, a Retry-After in whole seconds and a problem naming
// what was limited.
func (l *Limiter) Middleware(what string, key func(c *echo.Context) string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			ok, wait := l.Allow(key(c))
			if ok {
				return next(c)
			}
			secs := int(math.Ceil(wait.Seconds()))
			c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
			return problem.New(http.StatusTooManyRequests, "too many %s: at most %d a minute (bursts of %d); retry in %d s", what, l.limit.PerMinute, l.limit.Burst, secs)
		}
	}
}
