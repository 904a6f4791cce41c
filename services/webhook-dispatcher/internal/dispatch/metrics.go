package dispatch

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the dispatcher.
type Metrics struct {
	reg             prometheus.Registerer  // for the event consumer's own series
	Attempts        *prometheus.CounterVec // by outcome: success, http_error, network_error, refused, timeout
	Deliveries      *prometheus.CounterVec // finished deliveries by status
	AttemptDuration prometheus.Histogram
	Retries         prometheus.Counter
	Disabled        prometheus.Counter
	Dropped         prometheus.Counter // claimed jobs handed back unsent (full lane, lapsed lease, shutdown)
	TakenOver       prometheus.Counter // deliveries taken over from replicas whose lease ran out
	DeadLettered    prometheus.Counter
	SecretErrors    prometheus.Counter // secrets that could not be decrypted, once per webhook per cache load
	InFlight        prometheus.GaugeFunc
}

// NewMetrics registers the metrics; inFlight reports requests in flight.
func NewMetrics(reg prometheus.Registerer, inFlight func() float64) *Metrics {
	m := &Metrics{
		reg: reg,
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
		InFlight: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "webhook_requests_in_flight", Help: "Webhook requests in flight."}, inFlight),
	}
	reg.MustRegister(m.Attempts, m.Deliveries, m.AttemptDuration, m.Retries, m.Disabled, m.Dropped, m.TakenOver, m.DeadLettered, m.SecretErrors, m.InFlight)
	return m
}
