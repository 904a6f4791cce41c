package gateway

// A Socket.IO session's record is written when the session is established
// (connectSocket), so that it survives this gateway however it ends. What
// changes later goes through the queue below: the end of the session (when
// it disconnected, or that the client left on purpose) and a new token's
// expiry. A connection closed by this gateway's shutdown writes nothing: the
// gateway's last heartbeat, written after the drain, is when its sessions
// ended, as it is for a gateway that was killed.

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/xpeditis/notify/services/realtime-gateway/internal/recovery"
)

// Disconnects come in bursts (a load balancer reset, the end of a
// benchmark, a deploy): thousands of connections close within a few
// milliseconds, while one KV put is a round trip. The queue absorbs the burst
// without ever blocking the goroutine that closes a connection (the hub's
// fan-out or the timing wheel may be that goroutine), and several puts are in
// flight at once so that it drains in about the time the burst took.
const (
	saveQueueLimit = 1 << 16 // records waiting; about 100 bytes each
	saveWorkers    = 32      // puts in flight
	saveTimeout    = 5 * time.Second
)

// saveRequest updates the record a connection wrote at rev.
type saveRequest struct {
	c     *conn // told the new revision, for a connected session
	pid   string
	rev   uint64
	sess  recovery.Session
	alive time.Time // while connected: the token's expiry the record covers
}

// saveQueue is a FIFO of bounded length whose memory follows what it holds:
// an idle gateway keeps no large buffer.
type saveQueue struct {
	mu     sync.Mutex
	ready  sync.Cond
	items  []saveRequest
	head   int
	limit  int
	closed bool
}

func newSaveQueue(limit int) *saveQueue {
	q := &saveQueue{limit: limit}
	q.ready.L = &q.mu
	return q
}

// push adds r unless the queue is full or closed; it never waits.
func (q *saveQueue) push(r saveRequest) bool {
	q.mu.Lock()
	if q.closed || len(q.items)-q.head >= q.limit {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, r)
	q.mu.Unlock()
	q.ready.Signal()
	return true
}

// pop waits for a record; false once the queue is closed and empty.
func (q *saveQueue) pop() (saveRequest, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.head == len(q.items) && !q.closed {
		q.ready.Wait()
	}
	if q.head == len(q.items) {
		return saveRequest{}, false
	}
	r := q.items[q.head]
	q.items[q.head] = saveRequest{}
	q.head++
	switch {
	case q.head == len(q.items):
		// Drop a burst's large array once it is drained.
		if cap(q.items) > 1024 {
			q.items = nil
		} else {
			q.items = q.items[:0]
		}
		q.head = 0
	case q.head >= 1024 && q.head*2 >= len(q.items):
		// Pushes keep coming while it drains: move the rest to the front
		// so that append reuses the space.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items = q.items[:n]
		q.head = 0
	}
	return r, true
}

// close lets the workers finish what is queued, then return.
func (q *saveQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.ready.Broadcast()
}

// saveLoop is one worker: it records sessions until the queue is closed and
// drained.
func (s *Server) saveLoop() {
	for {
		r, ok := s.saves.pop()
		if !ok {
			return
		}
		s.save(r)
	}
}

func (s *Server) save(r saveRequest) {
	ctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
	defer cancel()
	rev, err := s.store.Update(ctx, r.pid, r.rev, r.sess, r.alive)
	switch {
	case errors.Is(err, recovery.ErrReplaced):
		// Another connection recovered the session and owns its record.
	case err != nil:
		s.saveFailed("cannot record sessions for recovery", err)
	case r.c != nil:
		r.c.recorded(rev, r.alive)
	}
}

func (s *Server) queueSave(r saveRequest) {
	if !s.saves.push(r) {
		s.saveFailed("recovery save queue full: a session will not be recoverable", nil)
	}
}

// beatLoop writes the gateway's heartbeat until ctx ends. While it beats,
// the sessions it serves are recoverable elsewhere; once it stops (killed,
// or stopped after the drain), their window counts from the last beat.
func (s *Server) beatLoop(ctx context.Context) {
	t := time.NewTicker(s.store.BeatEvery())
	defer t.Stop()
	for {
		s.beat()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) beat() {
	ctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
	defer cancel()
	if err := s.store.Beat(ctx, time.Now()); err != nil {
		s.saveFailed("cannot write the gateway's heartbeat: its sessions may not be recoverable elsewhere", err)
	}
}

// saveFailed counts a session that will not be recoverable. When NATS is
// down or a burst overflows the queue, many fail the same way: one line
// every few seconds says it, the metric counts them.
func (s *Server) saveFailed(msg string, err error) {
	s.metrics.recoverySaveErr.Inc()
	now := time.Now().UnixNano()
	if last := s.saveWarn.Load(); now-last > int64(5*time.Second) && s.saveWarn.CompareAndSwap(last, now) {
		if err != nil {
			s.log.Warn(msg, "err", err)
		} else {
			s.log.Warn(msg)
		}
	}
}
