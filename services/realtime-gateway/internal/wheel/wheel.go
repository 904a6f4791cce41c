// Package wheel is a timing wheel: one goroutine serves the heartbeats and
// deadlines of every connection, so that an idle connection costs a slice
// entry instead of a runtime timer.
//
// The wheel has no ticker. Its goroutine sleeps until the first slot that
// holds something, so its resolution (10 ms for the gateway) costs nothing
// while nothing is due: it wakes at most once per resolution step, and only
// for steps that have work (or, once per turn, for entries of a later turn).
package wheel

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Item is something scheduled on the wheel.
type Item interface {
	// Fire is called from the wheel's goroutine once the time given to
	// Schedule has come; tick is what Schedule returned. An item that was
	// rescheduled since ignores a fire whose tick is not its latest. Fire must
	// not block.
	Fire(now time.Time, tick int64)
}

// Wheel fires items at a resolution of one tick.
type Wheel struct {
	tick  time.Duration
	start time.Time
	wake  chan struct{} // an item was scheduled before the time Run sleeps until
	wakes atomic.Int64  // how many times Run woke (tests)

	mu    sync.Mutex
	slots [][]entry
	now   int64 // last tick processed
	next  int64 // the tick Run sleeps until; 0: none (asleep until Schedule)
}

type entry struct {
	item Item
	tick int64
}

// New returns a wheel with the given resolution and number of slots. Items
// further away than slots*tick stay in their slot for more turns.
func New(tick time.Duration, slots int) *Wheel {
	return &Wheel{tick: tick, start: time.Now(), slots: make([][]entry, slots), wake: make(chan struct{}, 1)}
}

// Schedule arranges for item to fire at (or up to one tick after) at, and
// returns the tick it will fire on.
func (w *Wheel) Schedule(item Item, at time.Time) int64 {
	t := int64((at.Sub(w.start) + w.tick - 1) / w.tick)
	w.mu.Lock()
	if t <= w.now {
		t = w.now + 1
	}
	i := t % int64(len(w.slots))
	w.slots[i] = append(w.slots[i], entry{item, t})
	earlier := w.next == 0 || t < w.next
	if earlier {
		w.next = t
	}
	w.mu.Unlock()
	if earlier {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return t
}

// Run advances the wheel until ctx ends.
func (w *Wheel) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var due []entry
	for {
		w.mu.Lock()
		next := w.next
		w.mu.Unlock()
		var fire <-chan time.Time // nil: nothing scheduled, sleep until Schedule
		if next != 0 {
			timer.Reset(time.Until(w.start.Add(time.Duration(next) * w.tick)))
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
			timer.Stop()
			continue // something earlier: sleep again, until it
		case <-fire:
		}
		w.wakes.Add(1)
		now := time.Now()
		due = w.advance(now, due[:0])
		for _, e := range due {
			e.item.Fire(now, e.tick)
		}
		clear(due)
	}
}

// advance moves the wheel up to now, returns the entries that are due and
// sets the tick to sleep until: the first non-empty slot's.
func (w *Wheel) advance(now time.Time, due []entry) []entry {
	target := int64(now.Sub(w.start) / w.tick)
	w.mu.Lock()
	defer w.mu.Unlock()
	// After a long stall visit each slot at most once.
	if target-w.now > int64(len(w.slots)) {
		w.now = target - int64(len(w.slots))
	}
	for w.now < target {
		w.now++
		i := w.now % int64(len(w.slots))
		slot := w.slots[i]
		keep := slot[:0]
		for _, e := range slot {
			if e.tick <= target {
				due = append(due, e)
			} else {
				keep = append(keep, e)
			}
		}
		clear(slot[len(keep):])
		if len(keep) == 0 && cap(keep) > 64 {
			keep = nil // let a burst's backing array go
		}
		w.slots[i] = keep
	}
	w.next = 0
	for t := w.now + 1; t <= w.now+int64(len(w.slots)); t++ {
		if len(w.slots[t%int64(len(w.slots))]) > 0 {
			w.next = t
			break
		}
	}
	return due
}
