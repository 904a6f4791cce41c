package napibench

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Load is what an open-loop run measured.
type Load struct {
	Name     string
	Target   float64       // requests/s asked for
	Sent     int           // requests started
	Elapsed  time.Duration // from the first scheduled start to the last response
	Latency  Summary       // from sending each request to reading its whole response
	Lag      Summary       // how late the generator started requests against their schedule
	Errors   map[string]int
	ErrorSum int
	Pressure Pressure
	CPU      CPUUse // filled by the caller, which knows the processes
}

// Achieved is the rate requests were started at.
func (l Load) Achieved() float64 { return rate(l.Sent, l.Elapsed) }

// ErrorText lists the errors by kind, most frequent first, or "none".
func (l Load) ErrorText() string {
	if l.ErrorSum == 0 {
		return "none"
	}
	kinds := make([]string, 0, len(l.Errors))
	for k := range l.Errors {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return l.Errors[kinds[i]] > l.Errors[kinds[j]] })
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = k + " ×" + strconv.Itoa(l.Errors[k])
	}
	return strings.Join(parts, ", ")
}

// OpenLoop runs the load name for d: it starts request i at start +
// i/perSecond whatever the earlier requests are doing, so a slow response
// delays nobody else and queues show up in the latency instead of silently
// lowering the rate (no coordinated omission). do reports an error kind (""
// for success).
func OpenLoop(ctx context.Context, name string, perSecond float64, d time.Duration, do func(ctx context.Context, i int) string) Load {
	n := int(perSecond * d.Seconds())
	interval := time.Duration(float64(time.Second) / perSecond)
	type sample struct {
		latency, lag time.Duration
		err          string
	}
	samples := make([]sample, n)
	var wg sync.WaitGroup
	pressure := StartPressure()
	start := time.Now()
	sent := 0
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			if sleepCtx(ctx, wait) != nil {
				break
			}
		}
		sent++
		wg.Go(func() {
			began := time.Now()
			err := do(ctx, i)
			samples[i] = sample{latency: time.Since(began), lag: began.Sub(due), err: err}
		})
	}
	wg.Wait()
	l := Load{Name: name, Target: perSecond, Sent: sent, Elapsed: time.Since(start), Errors: map[string]int{}, Pressure: pressure.Stop()}
	lat := make([]time.Duration, 0, sent)
	lag := make([]time.Duration, 0, sent)
	for _, s := range samples[:sent] {
		lat = append(lat, s.latency)
		lag = append(lag, s.lag)
		if s.err != "" {
			l.Errors[s.err]++
			l.ErrorSum++
		}
	}
	l.Latency, l.Lag = Summarize(lat), Summarize(lag)
	return l
}
