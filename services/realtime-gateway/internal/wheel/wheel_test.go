package wheel

import (
	"context"
	"sync"
	"testing"
	"time"
)

type recorder struct {
	mu    sync.Mutex
	fired []time.Time
	ticks []int64
	want  int64 // the tick this item is scheduled on, as a connection keeps it
}

func (r *recorder) Fire(now time.Time, tick int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if tick != r.want {
		return // rescheduled since: a stale entry
	}
	r.fired = append(r.fired, now)
	r.ticks = append(r.ticks, tick)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.fired)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFiresNoEarlierThanScheduled(t *testing.T) {
	w := New(5*time.Millisecond, 8) // 40ms per turn: items further away take several turns
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)

	items := map[time.Duration]*recorder{}
	start := time.Now()
	for _, d := range []time.Duration{0, 12 * time.Millisecond, 50 * time.Millisecond, 130 * time.Millisecond} {
		r := &recorder{}
		r.mu.Lock()
		r.want = w.Schedule(r, start.Add(d))
		r.mu.Unlock()
		items[d] = r
	}
	for d, r := range items {
		waitFor(t, "item at "+d.String(), func() bool { return r.count() == 1 })
		if got := r.fired[0].Sub(start); got < d {
			t.Errorf("item due at %s fired at %s", d, got)
		}
	}
}

func TestRescheduledItemFiresOnce(t *testing.T) {
	w := New(5*time.Millisecond, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	r := &recorder{}
	now := time.Now()
	r.mu.Lock()
	w.Schedule(r, now.Add(20*time.Millisecond)) // superseded below
	r.want = w.Schedule(r, now.Add(60*time.Millisecond))
	r.mu.Unlock()
	waitFor(t, "the item", func() bool { return r.count() == 1 })
	if got := r.fired[0].Sub(now); got < 60*time.Millisecond {
		t.Fatalf("fired at %s, before its new time", got)
	}
	// A further turn of the wheel fires nothing more.
	later := &recorder{}
	later.mu.Lock()
	later.want = w.Schedule(later, time.Now().Add(100*time.Millisecond))
	later.mu.Unlock()
	waitFor(t, "a later item", func() bool { return later.count() == 1 })
	if r.count() != 1 {
		t.Fatalf("fired %d times", r.count())
	}
}

func TestPastTimeFiresOnNextTick(t *testing.T) {
	w := New(5*time.Millisecond, 4)
	r := &recorder{}
	tick := w.Schedule(r, time.Now().Add(-time.Hour))
	if tick != w.now+1 {
		t.Fatalf("a past time got tick %d, want the next one (%d)", tick, w.now+1)
	}
}

// The wheel has no ticker: with nothing scheduled its goroutine stays
// asleep, and one item costs one wake-up however fine the resolution.
func TestSleepsUntilSomethingIsDue(t *testing.T) {
	w := New(time.Millisecond, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	r := &recorder{}
	r.mu.Lock()
	r.want = w.Schedule(r, time.Now().Add(50*time.Millisecond))
	r.mu.Unlock()
	waitFor(t, "the item", func() bool { return r.count() == 1 })
	if n := w.wakes.Load(); n != 1 {
		t.Fatalf("woke %d times for one item 50 ticks away, want 1", n)
	}
	// Empty again: later wake-ups would only come from a ticker.
	before := w.wakes.Load()
	probe := &recorder{}
	probe.mu.Lock()
	probe.want = w.Schedule(probe, time.Now().Add(30*time.Millisecond))
	probe.mu.Unlock()
	waitFor(t, "a second item", func() bool { return probe.count() == 1 })
	if n := w.wakes.Load() - before; n != 1 {
		t.Fatalf("woke %d times between two items, want 1", n)
	}
}

// An item scheduled earlier than the one the wheel sleeps for wakes it up
// in time.
func TestEarlierItemShortensTheSleep(t *testing.T) {
	w := New(time.Millisecond, 4096)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	far, near := &recorder{}, &recorder{}
	far.mu.Lock()
	far.want = w.Schedule(far, time.Now().Add(time.Hour))
	far.mu.Unlock()
	start := time.Now()
	near.mu.Lock()
	near.want = w.Schedule(near, start.Add(20*time.Millisecond))
	near.mu.Unlock()
	waitFor(t, "the near item", func() bool { return near.count() == 1 })
	if got := near.fired[0].Sub(start); got < 20*time.Millisecond {
		t.Fatalf("fired after %s, before its time", got)
	}
	if far.count() != 0 {
		t.Fatal("the far item fired")
	}
}

// An item fires on the first tick at or after its time: never early, and
// at most one tick (the gateway's 10 ms) late.
func TestScheduleRoundsUpToOneTick(t *testing.T) {
	const tick = 10 * time.Millisecond
	w := New(tick, 64)
	for _, d := range []time.Duration{tick, tick + 1, 25*time.Second + 3*time.Millisecond, 45 * time.Second} {
		at := w.start.Add(d)
		fires := w.start.Add(time.Duration(w.Schedule(&recorder{}, at)) * tick)
		if fires.Before(at) || fires.Sub(at) >= tick {
			t.Errorf("due %s after start: fires at %s, want within [%s, %s)", d, fires.Sub(w.start), d, d+tick)
		}
	}
}
