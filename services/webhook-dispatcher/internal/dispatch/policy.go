package dispatch

import (
	"time"

	"github.com/xpeditis/notify/pkg/backoff"
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
	d := backoff.Policy{Base: p.BaseDelay, Max: p.MaxDelay, Jitter: float64(p.JitterPercent) / 100}.Delay(n)
	if retryAfter > d {
		d = min(retryAfter, max(p.RetryAfterMax, d))
	}
	return d
}
