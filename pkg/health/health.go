// Package health is what a service knows of the things it depends on
// (PostgreSQL, NATS, its streams, buckets and consumers): one Condition
// each, which the code that uses the dependency reports to. A condition's
// outage is logged once when it starts (WARN), reminded at most every
// Remind while it lasts, and logged once with its length when it ends
// (INFO); the code that meets the failure logs nothing itself, so a
// database outage is three lines, not one per batch. /readyz answers ready
// only while every condition is met and names those that are not; metrics
// count the outages and their seconds.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Remind is how often a lasting outage is logged again.
const Remind = 30 * time.Second

// errStarting is the state of a condition never met nor failed yet.
var errStarting = errors.New("starting")

// Registry holds the conditions of one process.
type Registry struct {
	log    *slog.Logger
	remind time.Duration

	mu       sync.Mutex
	conds    []*Condition
	stopping bool

	outages *prometheus.Desc
	seconds *prometheus.Desc
	up      *prometheus.Desc
}

// New returns a registry whose metrics are registered on reg; lasting
// outages are reminded every remind (Remind in services).
func New(log *slog.Logger, reg prometheus.Registerer, remind time.Duration) *Registry {
	r := &Registry{
		log:     log,
		remind:  remind,
		outages: prometheus.NewDesc("notify_outages_total", "Outages of a dependency (PostgreSQL, NATS, a stream, bucket or consumer): times it went from available to not.", []string{"dependency"}, nil),
		seconds: prometheus.NewDesc("notify_outage_seconds_total", "Seconds a dependency was unavailable, the current outage included.", []string{"dependency"}, nil),
		up:      prometheus.NewDesc("notify_dependency_up", "1 while a dependency is available, 0 while it is not or not yet.", []string{"dependency"}, nil),
	}
	reg.MustRegister(r)
	return r
}

// Condition returns a new condition, not met until OK is called.
func (r *Registry) Condition(name string) *Condition {
	c := &Condition{r: r, name: name, err: errStarting}
	r.mu.Lock()
	r.conds = append(r.conds, c)
	r.mu.Unlock()
	return c
}

// Stopping makes the process not ready: it is shutting down.
func (r *Registry) Stopping() {
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
}

// Status reports whether every condition is met, and the state of each:
// "ok" or why not.
func (r *Registry) Status() (bool, map[string]string) {
	r.mu.Lock()
	conds, stopping := append([]*Condition(nil), r.conds...), r.stopping
	r.mu.Unlock()
	ready, out := !stopping, make(map[string]string, len(conds)+1)
	if stopping {
		out["shutdown"] = "in progress"
	}
	for _, c := range conds {
		if err := c.Err(); err != nil {
			ready, out[c.name] = false, err.Error()
		} else {
			out[c.name] = "ok"
		}
	}
	return ready, out
}

// Ready is the /readyz handler: 200 when ready, else 503; the body maps
// each condition to "ok" or the reason it is not met.
func (r *Registry) Ready(w http.ResponseWriter, _ *http.Request) {
	ready, status := r.Status()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(status)
}

// Alive is the /healthz handler: the process serves.
func Alive(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// Describe implements prometheus.Collector.
func (r *Registry) Describe(ch chan<- *prometheus.Desc) {
	ch <- r.outages
	ch <- r.seconds
	ch <- r.up
}

// Collect implements prometheus.Collector.
func (r *Registry) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	conds := append([]*Condition(nil), r.conds...)
	r.mu.Unlock()
	now := time.Now()
	for _, c := range conds {
		c.mu.Lock()
		outages, secs, up := c.outages, c.downSeconds, 0.0
		if c.err == nil {
			up = 1
		} else if c.failing {
			secs += now.Sub(c.since).Seconds()
		}
		c.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(r.outages, prometheus.CounterValue, float64(outages), c.name)
		ch <- prometheus.MustNewConstMetric(r.seconds, prometheus.CounterValue, secs, c.name)
		ch <- prometheus.MustNewConstMetric(r.up, prometheus.GaugeValue, up, c.name)
	}
}

// Condition is one dependency. Its methods are safe for concurrent use;
// nothing else changes its state. A nil Condition ignores reports (tests
// that run a component alone).
type Condition struct {
	r    *Registry
	name string

	mu          sync.Mutex
	err         error     // nil while available
	failing     bool      // an outage is under way (err is its latest failure)
	since       time.Time // start of the outage
	lastLog     time.Time // last line about the outage
	failures    int       // failures reported during the outage
	outages     int
	downSeconds float64 // of the outages that ended
}

// Name of the condition, as logs, metrics and /readyz show it.
func (c *Condition) Name() string { return c.name }

// Err is nil while the condition is met, else why it is not.
func (c *Condition) Err() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Fail reports that using the dependency failed with err. The first
// failure of an outage is logged as a WARN, later ones as a reminder at
// most every Remind; the rest are counted only.
func (c *Condition) Fail(err error) {
	if c == nil {
		return
	}
	if err == nil {
		err = errors.New("unavailable")
	}
	now := time.Now()
	c.mu.Lock()
	c.err = err
	c.failures++
	switch {
	case !c.failing:
		c.failing, c.since, c.lastLog, c.failures = true, now, now, 1
		c.outages++
		c.mu.Unlock()
		c.r.log.Warn("waiting for "+c.name, "dependency", c.name, "err", err.Error())
		return
	case now.Sub(c.lastLog) >= c.r.remind:
		c.lastLog = now
		since, failures := c.since, c.failures
		c.mu.Unlock()
		c.r.log.Warn("still waiting for "+c.name, "dependency", c.name, "err", err.Error(),
			"for", now.Sub(since).Round(time.Millisecond).String(), "failures", failures)
		return
	}
	c.mu.Unlock()
}

// OK reports that the dependency works. The end of an outage is logged
// once, with its length.
func (c *Condition) OK() {
	if c == nil {
		return
	}
	c.mu.Lock()
	if c.err == nil {
		c.mu.Unlock()
		return
	}
	was, since, failures := c.failing, c.since, c.failures
	c.err, c.failing = nil, false
	var length time.Duration
	if was {
		length = time.Since(since)
		c.downSeconds += length.Seconds()
	}
	c.mu.Unlock()
	if was {
		c.r.log.Info(c.name+" available", "dependency", c.name, "outage", length.Round(time.Millisecond).String(),
			"outage_seconds", length.Seconds(), "failures", failures)
	}
}

// Report calls OK when err is nil, else Fail.
func (c *Condition) Report(err error) {
	if err == nil {
		c.OK()
	} else {
		c.Fail(err)
	}
}

// Watch checks the dependency every interval until ctx ends, reporting
// each result, so that an outage is noticed and its end seen even while
// nothing else uses the dependency.
func (c *Condition) Watch(ctx context.Context, every time.Duration, check func(context.Context) error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, max(every, time.Second))
		err := check(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		c.Report(err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
