package dispatch

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/store"
)

// Limits bound the scheduler.
type Limits struct {
	MaxInFlight     int // requests in flight in this process
	PerWebhook      int // requests in flight to one webhook
	QueuePerWebhook int // jobs waiting for one webhook; more are left to the poller
	MaxQueued       int // jobs waiting in all; the consumer waits beyond this
	// StartPerWebhook is how many requests a webhook gets at once before it
	// has answered; each 2xx adds one, so the allowance doubles with every
	// round trip up to PerWebhook, and a failure takes it back to 1 (slow
	// start). A dead endpoint is then tried one request at a time and is
	// disabled after exactly the threshold of failures, instead of receiving
	// PerWebhook requests at once. 0 means PerWebhook.
	StartPerWebhook int
}

// outcome is what running a job did, as far as pacing its webhook goes.
type outcome int

const (
	notSent  outcome = iota // nothing reached the endpoint (webhook gone, lease lapsed, secret unreadable)
	answered                // the endpoint answered 2xx
	failed                  // the attempt failed; its result is recorded when run returns
)

// Scheduler runs jobs with a bounded number in flight overall and per
// webhook. Each webhook has its own queue ("lane"); lanes take turns for
// free workers, and a lane at its cap waits without holding a worker, so a
// slow or dead endpoint occupies at most PerWebhook workers while healthy
// lanes keep going. A job a full lane cannot take is handed to deferred,
// which gives its claim back to the queue in PostgreSQL, so nothing is lost
// and nothing waits for a lease.
type Scheduler struct {
	lim Limits
	run func(store.Job) outcome

	mu       sync.Mutex
	room     *sync.Cond // signalled when queued jobs leave
	lanes    map[uuid.UUID]*lane
	runnable []*lane
	known    map[uuid.UUID]*store.Job // queued, by delivery id
	inFlight int
	queued   int
	// stalled counts the queued jobs of lanes at their in-flight cap: a
	// dead endpoint's backlog must not slow the consumer down for everyone.
	stalled int
	closed  bool
	wg      sync.WaitGroup

	deferred func([]store.Job) // jobs not taken, called without the lock
}

type lane struct {
	id         uuid.UUID
	queue      []*store.Job
	inFlight   int
	limit      int // requests allowed in flight now (slow start)
	inRunnable bool
}

// NewScheduler returns a scheduler that runs each job with run and hands
// the jobs it cannot take (a full lane, or submitted after Stop) to
// deferred.
func NewScheduler(lim Limits, run func(store.Job) outcome, deferred func([]store.Job)) *Scheduler {
	if lim.StartPerWebhook <= 0 || lim.StartPerWebhook > lim.PerWebhook {
		lim.StartPerWebhook = lim.PerWebhook
	}
	s := &Scheduler{lim: lim, run: run, deferred: deferred, lanes: map[uuid.UUID]*lane{}, known: map[uuid.UUID]*store.Job{}}
	s.room = sync.NewCond(&s.mu)
	return s
}

// Submit queues jobs. A job already queued here (claimed again after its
// claim ran out) replaces the queued copy, so that its newer claim is the
// one completed.
func (s *Scheduler) Submit(jobs []store.Job) {
	if left := s.submit(jobs); len(left) > 0 {
		s.deferred(left)
	}
}

func (s *Scheduler) submit(jobs []store.Job) (left []store.Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range jobs {
		j := jobs[i]
		if s.closed {
			return append(left, jobs[i:]...)
		}
		if q, ok := s.known[j.DeliveryID]; ok {
			*q = j
			continue
		}
		l := s.lanes[j.WebhookID]
		if l == nil {
			l = &lane{id: j.WebhookID, limit: s.lim.StartPerWebhook}
			s.lanes[j.WebhookID] = l
		}
		if len(l.queue) >= s.lim.QueuePerWebhook {
			left = append(left, j)
			continue
		}
		s.stalled -= s.stalledIn(l)
		l.queue = append(l.queue, &j)
		s.stalled += s.stalledIn(l)
		s.known[j.DeliveryID] = &j
		s.queued++
		s.markRunnable(l)
	}
	s.pump()
	return left
}

// WaitForRoom blocks while MaxQueued jobs are waiting, at most for max, so
// that the consumer slows down instead of filling memory.
func (s *Scheduler) WaitForRoom(ctx context.Context, max time.Duration) {
	deadline := time.Now().Add(max)
	stop := context.AfterFunc(ctx, func() { s.mu.Lock(); s.room.Broadcast(); s.mu.Unlock() })
	defer stop()
	timer := time.AfterFunc(max, func() { s.mu.Lock(); s.room.Broadcast(); s.mu.Unlock() })
	defer timer.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.queued-s.stalled >= s.lim.MaxQueued && !s.closed && ctx.Err() == nil && time.Now().Before(deadline) {
		s.room.Wait()
	}
}

// Room is how many more jobs the poller should claim now.
func (s *Scheduler) Room() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(0, s.lim.MaxInFlight+s.lim.MaxInFlight-s.inFlight-(s.queued-s.stalled))
}

// InFlight is the number of jobs running.
func (s *Scheduler) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight
}

// stalledIn is what lane l adds to stalled.
func (s *Scheduler) stalledIn(l *lane) int {
	if l.inFlight >= l.limit {
		return len(l.queue)
	}
	return 0
}

func (s *Scheduler) markRunnable(l *lane) {
	if !l.inRunnable && len(l.queue) > 0 && l.inFlight < l.limit {
		l.inRunnable = true
		s.runnable = append(s.runnable, l)
	}
}

// pump starts queued jobs while workers are free, one lane at a time in
// turn. Called with mu held.
func (s *Scheduler) pump() {
	for s.inFlight < s.lim.MaxInFlight && len(s.runnable) > 0 && !s.closed {
		l := s.runnable[0]
		s.runnable[0] = nil
		s.runnable = s.runnable[1:]
		l.inRunnable = false
		if len(l.queue) == 0 || l.inFlight >= l.limit {
			continue
		}
		s.stalled -= s.stalledIn(l)
		j := l.queue[0]
		l.queue[0] = nil
		l.queue = l.queue[1:]
		delete(s.known, j.DeliveryID)
		s.queued--
		l.inFlight++
		s.inFlight++
		s.stalled += s.stalledIn(l)
		s.wg.Add(1)
		go s.exec(l, *j)
		s.markRunnable(l)
	}
	s.room.Broadcast()
}

func (s *Scheduler) exec(l *lane, j store.Job) {
	defer s.wg.Done()
	out := s.run(j)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stalled -= s.stalledIn(l)
	l.inFlight--
	s.inFlight--
	switch out {
	case answered:
		l.limit = min(l.limit+1, s.lim.PerWebhook) // one more per answer: twice as many per round trip
	case failed:
		l.limit = 1
	}
	s.stalled += s.stalledIn(l)
	if l.inFlight == 0 && len(l.queue) == 0 {
		delete(s.lanes, l.id)
	} else {
		s.markRunnable(l)
	}
	s.pump()
}

// Stop stops starting jobs and returns those that were queued, so that
// their claims can be handed back at once; Wait then waits for the jobs
// running.
func (s *Scheduler) Stop() []store.Job {
	s.mu.Lock()
	s.closed = true
	var left []store.Job
	for _, l := range s.lanes {
		for _, j := range l.queue {
			left = append(left, *j)
		}
		l.queue = nil
	}
	s.known = map[uuid.UUID]*store.Job{}
	s.queued, s.stalled = 0, 0
	s.room.Broadcast()
	s.mu.Unlock()
	return left
}

// Wait returns once the jobs started before Stop have finished.
func (s *Scheduler) Wait() { s.wg.Wait() }
