package dispatch

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/outbound"
)

// Metrics of the dispatcher.
type Metrics struct {
	Attempts        *prometheus.CounterVec // by outcome: outbound.Kind's labels
	Deliveries      *prometheus.CounterVec // finished deliveries by status
	AttemptDuration prometheus.Histogram
	Retries         prometheus.Counter
	Disabled        prometheus.Counter
	Dropped         prometheus.Counter // claimed jobs handed back unsent (full lane, lapsed lease, shutdown)
	TakenOver       prometheus.Counter // deliveries taken over from replicas whose lease ran out
	DeadLettered    prometheus.Counter
	SecretErrors    prometheus.Counter // secrets that could not be decrypted, once per webhook per cache load
	reg             prometheus.Registerer
}

// NewMetrics registers the metrics (the dispatcher adds its requests in
// flight when it is built).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhook_attempts_total", Help: "Webhook delivery attempts by outcome.",
		}, []string{"outcome"}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhook_deliveries_total", Help: "Webhook deliveries that reached a final status.",
		}, []string{"status"}),
		AttemptDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "webhook_attempt_duration_seconds", Help: "Duration of webhook delivery attempts.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		Retries:  prometheus.NewCounter(prometheus.CounterOpts{Name: "webhook_retries_scheduled_total", Help: "Automatic retries scheduled."}),
		Disabled: prometheus.NewCounter(prometheus.CounterOpts{Name: "webhook_disabled_total", Help: "Webhooks turned FAILED by failed attempts."}),
		Dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhook_jobs_deferred_total", Help: "Claimed jobs handed back to the queue unsent (full per-webhook queue, lapsed lease, webhook lookup failure, shutdown).",
		}),
		TakenOver: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhook_deliveries_taken_over_total", Help: "Deliveries taken over from dispatcher replicas whose lease ran out (they died or lost PostgreSQL).",
		}),
		DeadLettered: prometheus.NewCounter(prometheus.CounterOpts{Name: "webhook_events_dead_lettered_total", Help: "Events set aside as undecodable or invalid."}),
		SecretErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhook_secret_errors_total",
			Help: "Webhook secrets that could not be decrypted (key missing or changed) when an organization's webhooks were loaded; their deliveries fail.",
		}),
		reg: reg,
	}
	reg.MustRegister(m.Attempts, m.Deliveries, m.AttemptDuration, m.Retries, m.Disabled, m.Dropped, m.TakenOver, m.DeadLettered, m.SecretErrors)
	for _, l := range outbound.Labels() {
		m.Attempts.WithLabelValues(l)
	}
	return m
}

// countInFlight registers the gauge of requests in flight.
func (m *Metrics) countInFlight(n func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "webhook_requests_in_flight", Help: "Webhook requests in flight."},
		func() float64 { return float64(n()) }))
}
