package napibench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/xpeditis/notify/pkg/contract"
)

// arrivals records, per event of the run, when it was published and when
// the last of its notifications (one per recipient) was seen.
type arrivals struct {
	clock     monoClock
	prefix    string
	published atomic.Int64
	pubAt     []atomic.Int64 // ns on clock; written by the publisher
	mu        sync.Mutex
	seenAt    []int64 // ns on clock; 0 = not every notification seen yet
	hits      []int32 // notifications seen per event
	want      int32   // notifications per event
	seen      int
	dups      int
}

func newArrivals(run string, n, recipients int) *arrivals {
	return &arrivals{
		hits:   make([]int32, n),
		want:   int32(recipients),
		clock:  newMonoClock(),
		prefix: "bench-" + run + "-",
		pubAt:  make([]atomic.Int64, n),
		seenAt: make([]int64, n),
	}
}

func (a *arrivals) sent(i int) {
	a.pubAt[i].Store(int64(a.clock.since()))
	a.published.Store(int64(i + 1))
}

// observe handles one message of live.user.>.
func (a *arrivals) observe(m *nats.Msg) {
	now := int64(a.clock.since())
	var body struct {
		Event string `json:"event"`
		Data  struct {
			EventID string `json:"eventId"`
		} `json:"data"`
	}
	if json.Unmarshal(m.Data, &body) != nil || body.Event != contract.UserEventNotification {
		return
	}
	rest, ok := strings.CutPrefix(body.Data.EventID, a.prefix)
	if !ok {
		return // another run's or a real event
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i < 0 || i >= len(a.seenAt) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hits[i]++
	switch {
	case a.hits[i] > a.want:
		a.dups++
	case a.hits[i] == a.want:
		a.seenAt[i] = max(now, 1)
		a.seen++
	}
}

func (a *arrivals) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen
}

// result fills the timing figures of res. ackedAt is when the consumer's ack
// floor covered every event; it ends the run when notifications are missing.
func (a *arrivals) result(res *IngestResult, ackedAt time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	res.Observed, res.Duplicates = a.seen, a.dups
	lat := make([]time.Duration, 0, a.seen)
	done := make([]time.Duration, 0, a.seen)
	for i, at := range a.seenAt {
		if at == 0 {
			continue
		}
		lat = append(lat, time.Duration(at-a.pubAt[i].Load()))
		done = append(done, time.Duration(at))
	}
	res.Latency = Summarize(lat)
	slices.Sort(done)
	res.Done = ackedAt
	if a.seen == len(a.seenAt) && a.seen > 0 {
		res.Done = done[len(done)-1]
	}
	if len(done) >= 10 {
		lo, hi := done[len(done)/10], done[len(done)*9/10]
		res.Steady = rate(len(done)*9/10-len(done)/10, hi-lo)
	}
	if len(done) > 0 {
		res.PerSecond = make([]int, int(done[len(done)-1]/time.Second)+1)
		for _, d := range done {
			res.PerSecond[int(d/time.Second)]++
		}
	}
}

// monoClock measures durations since its creation on the monotonic clock.
type monoClock struct{ start time.Time }

func newMonoClock() monoClock            { return monoClock{start: time.Now()} }
func (c monoClock) since() time.Duration { return time.Since(c.start) }

// startProgress prints line() every second until the returned stop is
// called (stop may be called more than once).
func startProgress(w io.Writer, clock monoClock, line func() string) (stop func()) {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	var once sync.Once
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(w, "  %5.1fs  %s\n", clock.since().Seconds(), line())
			}
		}
	}()
	return func() { once.Do(func() { close(done) }) }
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
