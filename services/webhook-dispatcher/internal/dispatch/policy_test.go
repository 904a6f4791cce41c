package dispatch

import (
	"testing"
	"time"
)

func TestPolicyDelay(t *testing.T) {
	p := Policy{MaxAttempts: 3, BaseDelay: time.Second, MaxDelay: 10 * time.Second, JitterPercent: 20, RetryAfterMax: time.Minute}
	for range 200 {
		d1, d2, d5 := p.Delay(1, 0), p.Delay(2, 0), p.Delay(5, 0)
		if d1 < 800*time.Millisecond || d1 > 1200*time.Millisecond || d2 < 1600*time.Millisecond || d2 > 2400*time.Millisecond || d2 <= d1 {
			t.Fatalf("delays %s, %s: want about 1s then 2s, growing", d1, d2)
		}
		if d5 > 12*time.Second || d5 < 8*time.Second {
			t.Fatalf("delay of attempt 5 = %s, want about the 10s cap", d5)
		}
	}
	if d := p.Delay(1, 30*time.Second); d != 30*time.Second {
		t.Fatalf("Retry-After 30s: %s", d)
	}
	if d := p.Delay(1, time.Hour); d != time.Minute {
		t.Fatalf("Retry-After 1h: %s, want capped at 1m", d)
	}
}
