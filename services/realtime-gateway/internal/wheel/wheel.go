// Package wheel is a timing wheel: one goroutine and one ticker serve the
// heartbeats and deadlines of every connection, so that an idle connection
// costs a slice entry instead of a runtime timer.
package wheel

import (
	"context"
	"sync"
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

	mu    sync.Mutex
	slots [][]entry
	now   int64 // last tick processed
}

type entry struct {
	item Item
	tick int64
}

// New returns a wheel with the given resolution and number of slots. Items
// further away than slots*tick stay in their slot for more turns.
func New(tick time.Duration, slots int) *Wheel {
	return &Wheel{tick: tick, start: time.Now(), slots: make([][]entry, slots)}
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
	w.mu.Unlock()
	return t
}

// Run advances the wheel until ctx ends.
func (w *Wheel) Run(ctx context.Context) {
	tk := time.NewTicker(w.tick)
	defer tk.Stop()
	var due []entry
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tk.C:
			due = w.advance(now, due[:0])
			for _, e := range due {
				e.item.Fire(now, e.tick)
			}
			clear(due)
		}
	}
}

// advance moves the wheel up to now and returns the entries that are due.
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
	return due
}
