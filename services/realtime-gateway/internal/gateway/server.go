package gateway

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/httpx"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/hub"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/recovery"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/wheel"
)

// Options are the gateway's tunables (see realtimegateway.Config).
type Options struct {
	PingInterval    time.Duration
	PingTimeout     time.Duration
	ConnectTimeout  time.Duration // for the Socket.IO CONNECT or the /ws auth frame
	WriteTimeout    time.Duration
	MaxPayload      int            // bytes of one client message or polling body
	SendQueue       int            // frames queued per connection before it counts as slow
	SendBuffer      int            // bytes queued per authenticated connection before it counts as slow
	MaxPendingPerIP int            // connections not yet authenticated per client address (0: no limit)
	TrustedProxies  []netip.Prefix // proxies whose X-Forwarded-For gives the client address
	MaxPending      int            // connections not yet authenticated in all
	MaxConnsPerUser int
	AllowedOrigins  []string // "*" allows any; empty allows same-origin and non-browser clients
	ShutdownGrace   time.Duration
	DrainRate       int // connections closed per second at shutdown (more when half the grace would not do)
}

// Verifier checks access tokens.
type Verifier interface {
	Verify(token string) (auth.Claims, error)
}

// Hub is the fan-out the connections join.
type Hub interface {
	Join(userID string, s hub.Sink) error
	Leave(userID string, s hub.Sink)
}

// Recovery is the shared history of sessions and messages.
type Recovery interface {
	Put(ctx context.Context, pid string, s recovery.Session, alive time.Time) (uint64, error)
	Update(ctx context.Context, pid string, rev uint64, s recovery.Session, alive time.Time) (uint64, error)
	Beat(ctx context.Context, now time.Time) error
	BeatEvery() time.Duration
	Load(ctx context.Context, pid string, now time.Time) (recovery.Session, bool, error)
	Complete(ctx context.Context, userID string, p recovery.Point) (bool, error)
	Replay(ctx context.Context, userID string, p recovery.Point, fn func(*hub.Message) error) error
	LastOffset(ctx context.Context, userID string) (uint64, error)
}

// Server serves the client endpoints.
type Server struct {
	opts     Options
	log      *slog.Logger
	verifier Verifier
	hub      Hub
	store    Recovery
	wheel    *wheel.Wheel
	metrics  *metrics
	upgrader websocket.Upgrader
	pending  *pendingLimits

	ctx      context.Context // ends when the server stops; bounds replays
	stop     context.CancelFunc
	draining atomic.Bool
	writers  sync.WaitGroup
	saves    *saveQueue
	gone     chan struct{} // closed when draining and no connection is left
	goneOnce sync.Once
	saveWarn atomic.Int64 // when a failed save was last logged, Unix ns
	savers   sync.WaitGroup

	mu    sync.Mutex
	conns map[string]*conn
}

// New builds the server. Its timing wheel and savers run in Run.
func New(o Options, log *slog.Logger, v Verifier, h Hub, store Recovery, w *wheel.Wheel, reg prometheus.Registerer) *Server {
	ctx, stop := context.WithCancel(context.Background())
	s := &Server{
		opts: o, log: log, verifier: v, hub: h, store: store, wheel: w,
		metrics: newMetrics(reg),
		ctx:     ctx, stop: stop,
		saves: newSaveQueue(saveQueueLimit), gone: make(chan struct{}),
		conns: make(map[string]*conn),
	}
	s.pending = newPendingLimits(o.MaxPendingPerIP, o.MaxPending, o.TrustedProxies, func(limit string) {
		s.metrics.pendingRefused.WithLabelValues(limit).Inc()
	})
	s.metrics.watchPending(reg, s.pending.count)
	s.upgrader = websocket.Upgrader{
		// No ReadBufferSize: gorilla then reads through the hijacked
		// bufio.Reader, the small one the hijacker makes (see reader.go),
		// whose Buffered() tells the reader that a message is waiting.
		// With a size of its own it would buffer elsewhere, and a second
		// message read in the same chunk as the first would wait for more
		// data.
		WriteBufferSize:  4096,
		WriteBufferPool:  &sync.Pool{},
		HandshakeTimeout: 10 * time.Second,
		CheckOrigin:      s.originAllowed,
	}
	return s
}

// Register adds the routes.
func (s *Server) Register(e *echo.Echo) {
	sio := echo.WrapHandler(http.HandlerFunc(s.serveEngineIO))
	e.Any("/socket.io/", sio)
	e.Any("/socket.io", sio)
	e.GET("/ws", echo.WrapHandler(http.HandlerFunc(s.servePlain)))
}

// Run serves until ctx ends, then drains: see shutdown.
func (s *Server) Run(ctx context.Context) error {
	wheelCtx, stopWheel := context.WithCancel(context.Background())
	defer stopWheel()
	go s.wheel.Run(wheelCtx)
	for range saveWorkers {
		s.savers.Go(s.saveLoop)
	}
	beatCtx, stopBeats := context.WithCancel(context.Background())
	beats := make(chan struct{})
	go func() { s.beatLoop(beatCtx); close(beats) }()
	<-ctx.Done()
	s.shutdown(func() { stopBeats(); <-beats })
	return nil
}

// shutdown drains the gateway within the grace period. New handshakes are
// refused from the start (the process's /readyz already says not ready, so
// a load balancer sends them elsewhere). The open connections are closed
// gracefully, so that their clients reconnect at once, to another gateway,
// and recover there: their queued messages, then a WebSocket close 1001 or
// the Engine.IO close packet. The closes are spread (drain), so the other
// gateways take the reconnects as a stream, not a wall. Once every
// connection is gone the heartbeat stops with a last beat: the sessions'
// recovery window counts from it.
func (s *Server) shutdown(stopBeats func()) {
	grace := s.opts.ShutdownGrace
	deadline := time.Now().Add(grace)
	s.draining.Store(true)
	s.drain(grace / 2)
	waitFor(&s.writers, time.Until(deadline))
	s.stop() // replays still running give up
	// A connection its client closed just before may still be on its way
	// out, its record not yet queued.
	s.mu.Lock()
	s.noteGoneLocked()
	s.mu.Unlock()
	select {
	case <-s.gone:
	case <-time.After(time.Until(deadline)):
	}
	stopBeats()
	s.beat()
	s.saves.close()
	waitFor(&s.savers, max(time.Until(deadline), saveTimeout))
}

// drain closes every connection, at most DrainRate a second unless that
// would take longer than within.
func (s *Server) drain(within time.Duration) {
	all := s.snapshot()
	if n := len(all); n > 0 {
		period := time.Duration(0)
		if s.opts.DrainRate > 0 {
			period = min(time.Duration(n)*time.Second/time.Duration(s.opts.DrainRate), within)
		}
		s.log.Info("gateway draining", "connections", n, "over", period.String())
		start := time.Now()
		for i, c := range all {
			// The i-th close is due at start + period*i/n; closes due
			// within a few milliseconds go together.
			if wait := time.Until(start.Add(period * time.Duration(i) / time.Duration(n))); wait > drainStep {
				time.Sleep(wait)
			}
			c.closeGracefully(reasonShutdown, websocket.CloseGoingAway, "server shutting down, reconnect")
		}
	}
	// A handshake that passed the draining check just before may still add
	// a connection: a few passes catch it.
	for pass := 0; pass < 3; pass++ {
		rest := s.snapshot()
		if len(rest) == 0 {
			return
		}
		for _, c := range rest {
			c.closeGracefully(reasonShutdown, websocket.CloseGoingAway, "server shutting down, reconnect")
		}
	}
}

// drainStep is the resolution of the drain's schedule.
const drainStep = 5 * time.Millisecond

func (s *Server) snapshot() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		all = append(all, c)
	}
	return all
}

func waitFor(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// track registers a new connection (conn's open).
func (s *Server) track(c *conn, transport string) {
	s.mu.Lock()
	s.conns[c.id] = c
	s.mu.Unlock()
	s.metrics.connections.WithLabelValues(transport).Inc()
	s.metrics.accepted.WithLabelValues(transport).Inc()
}

func (s *Server) lookup(id string) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[id]
}

// forget is the end of a closed connection (what conn's close hands
// over): it gives back a pending slot, leaves the hub, and queues the
// record of a Socket.IO session's end. The connection leaves the table
// last, so that a shutdown that finds the table empty knows every record is
// queued.
func (s *Server) forget(c *conn, end ending) {
	if end.slot {
		s.pending.release(c.peer)
	}
	if end.watch != 0 {
		unwatch(end.watch)
	}
	s.metrics.queuePeak.Observe(float64(end.peak))
	if end.user != "" {
		s.hub.Leave(end.user, c)
	}
	s.metrics.connections.WithLabelValues(end.transport).Dec()
	s.metrics.disconnects.WithLabelValues(end.reason).Inc()
	if end.reason == reasonSlowClient {
		s.metrics.slowClients.Inc()
	}
	if end.reason != reasonShutdown && !closedByClient(end.reason) {
		s.log.Debug("connection closed", "transport", end.transport, "reason", end.reason)
	}
	if end.save != nil {
		s.queueSave(*end.save)
	}
	s.mu.Lock()
	delete(s.conns, c.id)
	s.noteGoneLocked()
	s.mu.Unlock()
}

// noteGoneLocked tells a draining server that its last connection is gone.
func (s *Server) noteGoneLocked() {
	if s.draining.Load() && len(s.conns) == 0 {
		s.goneOnce.Do(func() { close(s.gone) })
	}
}

// originAllowed applies the allow-list to browsers (requests with Origin),
// by the rule the REST APIs share.
func (s *Server) originAllowed(r *http.Request) bool {
	return httpx.OriginAllowed(s.opts.AllowedOrigins, r)
}

// newID returns a random URL-safe id of 128 bits.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
