package backoff_test

import (
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/backoff"
)

func TestTheDelayDoublesUpToItsCap(t *testing.T) {
	p := backoff.Policy{Base: time.Second, Max: 30 * time.Second}
	for n, want := range map[int]time.Duration{0: time.Second, 1: time.Second, 2: 2 * time.Second, 5: 16 * time.Second, 6: 30 * time.Second, 1000: 30 * time.Second} {
		if got := p.Delay(n); got != want {
			t.Errorf("attempt %d: %s, want %s", n, got, want)
		}
	}
}

func TestJitterStaysWithinItsShare(t *testing.T) {
	p := backoff.Policy{Base: 10 * time.Second, Max: time.Minute, Jitter: 0.2}
	seen := map[time.Duration]bool{}
	for range 200 {
		d := p.Delay(1)
		if d < 8*time.Second || d > 12*time.Second {
			t.Fatalf("delay %s outside 10s ± 20%%", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct delays in 200: no jitter", len(seen))
	}
}
