package dispatch

import (
	"math/rand/v2"
	"time"
)

// Policy is the retry policy: how many automatic attempts a delivery gets,
// how long to wait between them, and when a webhook is disabled.
type Policy struct {
	MaxAttempts      int           // automatic attempts per delivery
	FailureThreshold int           // consecutive failed attempts that disable a webhook
	BaseDelay        time.Duration // wait after the first failed attempt
	MaxDelay         time.Duration // cap of the exponential wait
	JitterPercent    int           // the wait varies by ± this share
	RetryAfterMax    time.Duration // a receiver's Retry-After is honoured up to this
}

// Delay is the wait after failed attempt number n (1-based): BaseDelay
// doubled per attempt, capped, varied by jitter so that many deliveries
// failing together do not come back together, and lengthened to the
// receiver's Retry-After within RetryAfterMax.
func (p Policy) Delay(n int, retryAfter time.Duration) time.Duration {
	d := p.BaseDelay
	for i := 1; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	if p.JitterPercent > 0 && d > 0 {
		spread := int64(d) * int64(p.JitterPercent) / 100
		d += time.Duration(rand.Int64N(2*spread+1) - spread)
	}
	if retryAfter > d {
		d = min(retryAfter, max(p.RetryAfterMax, d))
	}
	return d
}
