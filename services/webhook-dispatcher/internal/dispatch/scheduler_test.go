package dispatch

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/store"
)

// unpaced runs f and reports that nothing was sent, so that the webhook's
// in-flight allowance stays where it is.
func unpaced(f func(store.Job)) func(store.Job) outcome {
	return func(j store.Job) outcome { f(j); return notSent }
}

func jobsFor(hook uuid.UUID, n int) []store.Job {
	out := make([]store.Job, n)
	for i := range out {
		out[i] = store.Job{DeliveryID: uuid.New(), WebhookID: hook}
	}
	return out
}

// A webhook whose requests hang holds at most PerWebhook workers; the
// healthy webhooks' jobs all run meanwhile.
func TestSchedulerIsolatesSlowWebhooks(t *testing.T) {
	slow, healthy := uuid.New(), uuid.New()
	release := make(chan struct{})
	var slowRunning, slowMax, slowStarted, healthyDone atomic.Int64
	var dropped atomic.Int64
	s := NewScheduler(Limits{MaxInFlight: 8, PerWebhook: 3, QueuePerWebhook: 50, MaxQueued: 1000}, unpaced(func(j store.Job) {
		if j.WebhookID == slow {
			slowStarted.Add(1)
			n := slowRunning.Add(1)
			for {
				m := slowMax.Load()
				if n <= m || slowMax.CompareAndSwap(m, n) {
					break
				}
			}
			<-release
			slowRunning.Add(-1)
			return
		}
		healthyDone.Add(1)
	}), func(jobs []store.Job) { dropped.Add(int64(len(jobs))) })

	s.Submit(jobsFor(slow, 60)) // 50 queue, 10 more are left to the poller
	s.Submit(jobsFor(healthy, 200))
	testkit.Eventually(t, 5*time.Second, "every healthy job to run while the slow ones hang", func() bool { return healthyDone.Load() >= 50 })
	s.Submit(jobsFor(healthy, 30))
	testkit.Eventually(t, 5*time.Second, "later healthy jobs too", func() bool { return healthyDone.Load() == 80 })
	if slowMax.Load() > 3 {
		t.Fatalf("%d requests in flight to one webhook, cap 3", slowMax.Load())
	}
	// Lanes hold 50 jobs: 10 slow and 150 healthy ones were deferred.
	if dropped.Load() != 10+150 {
		t.Fatalf("%d jobs deferred, want 160", dropped.Load())
	}
	// Every queued job either ran or is handed back by Stop.
	left := s.Stop()
	close(release)
	s.Wait()
	if int64(len(left))+slowStarted.Load() != 50 {
		t.Fatalf("Stop returned %d queued slow jobs and %d ran, want 50 in all", len(left), slowStarted.Load())
	}
}

// Stop hands back what was queued at once, while jobs still run; jobs
// submitted afterwards are deferred; Wait waits for the running ones.
func TestSchedulerStopReturnsQueuedJobsWhileJobsRun(t *testing.T) {
	hook := uuid.New()
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(2)
	var finished, deferred atomic.Int64
	s := NewScheduler(Limits{MaxInFlight: 2, PerWebhook: 2, QueuePerWebhook: 100, MaxQueued: 100}, unpaced(func(store.Job) {
		started.Done()
		<-release
		finished.Add(1)
	}), func(jobs []store.Job) { deferred.Add(int64(len(jobs))) })
	s.Submit(jobsFor(hook, 10))
	started.Wait()
	if got := s.Stop(); len(got) != 8 {
		t.Fatalf("Stop returned %d queued jobs, want 8", len(got))
	}
	s.Submit(jobsFor(hook, 3))
	if deferred.Load() != 3 {
		t.Fatalf("%d jobs submitted after Stop were deferred, want 3", deferred.Load())
	}
	close(release)
	s.Wait()
	if finished.Load() != 2 {
		t.Fatalf("%d jobs ran, want the 2 started before Stop", finished.Load())
	}
}

// A job claimed again while queued replaces its queued copy instead of
// running twice.
func TestSchedulerReplacesReclaimedJobs(t *testing.T) {
	hook := uuid.New()
	release := make(chan struct{})
	var ran sync.Map
	var runs atomic.Int64
	s := NewScheduler(Limits{MaxInFlight: 1, PerWebhook: 1, QueuePerWebhook: 10, MaxQueued: 10}, unpaced(func(j store.Job) {
		<-release
		ran.Store(j.DeliveryID, j.Claim)
		runs.Add(1)
	}), func([]store.Job) {})
	jobs := jobsFor(hook, 2)
	s.Submit(jobs)
	again := jobs[1]
	again.Claim = 7
	s.Submit([]store.Job{again})
	close(release)
	testkit.Eventually(t, 5*time.Second, "both jobs to run", func() bool { return runs.Load() == 2 })
	s.Stop()
	s.Wait()
	if runs.Load() != 2 {
		t.Fatalf("%d runs, want 2", runs.Load())
	}
	if c, _ := ran.Load(jobs[1].DeliveryID); c != 7 {
		t.Fatalf("the re-claimed job ran with claim %v, want 7", c)
	}
}

// Slow start: a webhook gets StartPerWebhook requests at once until it
// answers, one more for each 2xx (twice as many per round trip) up to
// PerWebhook, and one at a time again after a failure.
func TestSchedulerPacesEachWebhookBySlowStart(t *testing.T) {
	type round struct {
		release chan struct{}
		started int
		result  outcome // what its jobs report, set before release
	}
	hook := uuid.New()
	var mu sync.Mutex
	cur := &round{release: make(chan struct{})}
	s := NewScheduler(Limits{MaxInFlight: 32, PerWebhook: 8, StartPerWebhook: 1, QueuePerWebhook: 1000, MaxQueued: 1000}, func(store.Job) outcome {
		mu.Lock()
		r := cur
		r.started++
		mu.Unlock()
		<-r.release
		return r.result
	}, func([]store.Job) {})
	// next ends the jobs of the current round together with result and says
	// how many the lane had started; those it starts meanwhile make the next
	// round.
	next := func(result outcome) int {
		t.Helper()
		// The round is complete when the jobs of the last one are all
		// accounted for (everything in flight has started here) and the
		// lane has started all its allowance lets it.
		testkit.Eventually(t, 5*time.Second, "the lane to start all it may", func() bool {
			s.mu.Lock()
			inFlight, limit := s.inFlight, -1
			if l := s.lanes[hook]; l != nil {
				limit = l.limit
			}
			s.mu.Unlock()
			mu.Lock()
			defer mu.Unlock()
			return cur.started > 0 && cur.started == inFlight && inFlight == limit
		})
		mu.Lock()
		r := cur
		cur = &round{release: make(chan struct{})}
		n := r.started
		r.result = result
		mu.Unlock()
		close(r.release)
		return n
	}
	s.Submit(jobsFor(hook, 100))
	var got []int
	for range 5 {
		got = append(got, next(answered))
	}
	got = append(got, next(failed), next(failed))
	mu.Lock()
	close(cur.release)
	mu.Unlock()
	s.Stop()
	s.Wait()
	want := []int{1, 2, 4, 8, 8, 8, 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("requests in flight per round %v, want %v", got, want)
	}
}
