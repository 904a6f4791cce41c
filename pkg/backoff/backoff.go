// Package backoff is the one exponential backoff of the code base: consumer
// redeliveries, start-up retries, restarts of a stopped consumer and the
// webhook retry policy all wait with it.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Policy doubles Base for each attempt after the first, up to Max, and
// varies the result by ± Jitter (a fraction, 0 to 1) so that many callers
// failing together do not come back together.
type Policy struct {
	Base   time.Duration
	Max    time.Duration
	Jitter float64
}

// Delay is the wait after failed attempt n (1-based; 0 counts as 1).
func (p Policy) Delay(n int) time.Duration {
	d := p.Base
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	if p.Jitter > 0 && d > 0 {
		spread := int64(float64(d) * min(p.Jitter, 1))
		if spread > 0 {
			d += time.Duration(rand.Int64N(2*spread+1) - spread)
		}
	}
	return d
}
