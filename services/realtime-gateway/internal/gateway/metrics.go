package gateway

import "github.com/prometheus/client_golang/prometheus"

// metrics are the gateway's Prometheus series.
type metrics struct {
	connections     *prometheus.GaugeVec   // open connections by transport
	accepted        *prometheus.CounterVec // handshakes by transport
	upgrades        prometheus.Counter
	sent            *prometheus.CounterVec // user messages written by transport
	sentBy          map[string]prometheus.Counter
	disconnects     *prometheus.CounterVec // by reason
	slowClients     prometheus.Counter
	connectErrors   *prometheus.CounterVec // by code
	recovery        *prometheus.CounterVec // hit or miss
	recoverySaveErr prometheus.Counter
	pendingRefused  *prometheus.CounterVec // by limit
	queuePeak       prometheus.Histogram   // most bytes a connection had queued
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_connections", Help: "Open client connections by transport (polling, websocket: Socket.IO; ws: plain WebSocket).",
		}, []string{"transport"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_connections_accepted_total", Help: "Connections opened, by the transport they started on.",
		}, []string{"transport"}),
		upgrades: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_upgrades_total", Help: "Socket.IO sessions upgraded from polling to WebSocket.",
		}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_messages_sent_total", Help: "User messages queued to client connections, by transport.",
		}, []string{"transport"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_disconnects_total", Help: "Closed connections by reason.",
		}, []string{"reason"}),
		slowClients: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_slow_client_disconnects_total", Help: "Connections closed because their send queue was full.",
		}),
		connectErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_connect_errors_total", Help: "Refused connects by code.",
		}, []string{"code"}),
		recovery: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_recovery_total", Help: "Reconnects that asked for recovery, by result (hit: every missed message replayed; miss: client told to refetch).",
		}, []string{"result"}),
		recoverySaveErr: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_recovery_save_errors_total", Help: "Disconnected sessions that could not be recorded for recovery.",
		}),
		pendingRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_pending_refused_total", Help: "Handshakes refused because too many connections had not authenticated yet, by limit (per_address, total).",
		}, []string{"limit"}),
		queuePeak: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gateway_send_queue_peak_bytes",
			Help:    "The most a connection had queued at once (frames plus 32 bytes each), observed when it closes.",
			Buckets: []float64{1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20},
		}),
	}
	reg.MustRegister(m.pendingRefused, m.queuePeak)
	m.pendingRefused.WithLabelValues("per_address")
	m.pendingRefused.WithLabelValues("total")
	reg.MustRegister(m.connections, m.accepted, m.upgrades, m.sent, m.disconnects,
		m.slowClients, m.connectErrors, m.recovery, m.recoverySaveErr)
	m.sentBy = make(map[string]prometheus.Counter, len(transportNames))
	for _, t := range transportNames {
		m.connections.WithLabelValues(t)
		m.sentBy[t] = m.sent.WithLabelValues(t)
	}
	m.recovery.WithLabelValues("hit")
	m.recovery.WithLabelValues("miss")
	return m
}

// sentOn is the count of user messages sent on a transport, looked up once
// per message: a map of three, where the vector would hash the label.
func (m *metrics) sentOn(transport string) prometheus.Counter { return m.sentBy[transport] }

// watchPending exports the count of connections not yet authenticated.
func (m *metrics) watchPending(reg prometheus.Registerer, count func() int) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gateway_pending_connections", Help: "Connections that have not authenticated yet.",
	}, func() float64 { return float64(count()) }))
}
