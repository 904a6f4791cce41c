// Package batch cuts what arrives on a channel into batches: the one
// batch-filling rule of the services (the JetStream consumers' batches, the
// webhook results written together).
package batch

import (
	"context"
	"time"
)

// Next blocks for one item, then appends to buf what arrives within window
// of it, up to max items in all, and returns the batch. Under load the
// channel holds a backlog and the batch fills at once; at a trickle the
// window gathers a few items, so one write serves them all. A zero window
// takes only what has already arrived. Next reports false once in is closed
// (the batch then holds what was left); it returns an empty batch when ctx
// ends before the first item.
func Next[T any](ctx context.Context, in <-chan T, buf []T, max int, window time.Duration) ([]T, bool) {
	select {
	case it, ok := <-in:
		if !ok {
			return buf, false
		}
		buf = append(buf, it)
	case <-ctx.Done():
		return buf, true
	}
	var linger <-chan time.Time
	if window > 0 {
		t := time.NewTimer(window)
		defer t.Stop()
		linger = t.C
	}
	for len(buf) < max {
		if linger == nil {
			select {
			case it, ok := <-in:
				if !ok {
					return buf, false
				}
				buf = append(buf, it)
				continue
			default:
				return buf, true
			}
		}
		select {
		case it, ok := <-in:
			if !ok {
				return buf, false
			}
			buf = append(buf, it)
		case <-linger:
			return buf, true
		}
	}
	return buf, true
}
