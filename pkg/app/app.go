// Package app runs services: it serves the ops endpoints at once, sets up
// the shared connections (NATS, the streams, PostgreSQL) with retries until
// they work, builds each service with them, serves their routes on the same
// HTTP port, and shuts everything down in order when the context ends. Each
// service binary runs one service through it; notifyd runs all three.
//
// A process is alive (/healthz) from its first second and ready (/readyz)
// only while every condition of its health registry is met: NATS
// connected, streams set up, PostgreSQL reachable, consumers running. What
// it waits for is logged once per kind (pkg/health) and named by /readyz.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/buildinfo"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/health"
	"github.com/xpeditis/notify/pkg/httpx"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/netx"
	"github.com/xpeditis/notify/pkg/postgres"
	"github.com/xpeditis/notify/pkg/tracing"
)

// Deps are what a service is built from.
type Deps struct {
	Log      *slog.Logger
	DB       *sqlx.DB // nil when no service of the process needs PostgreSQL
	NC       *nats.Conn
	JS       jetstream.JetStream
	Metrics  prometheus.Registerer
	Verifier *auth.Verifier
	Common   config.Common
	// Health holds the conditions readiness depends on; services add
	// theirs (consumers, buckets). Code that meets a failure of PostgreSQL
	// or NATS reports it to Postgres or NATS instead of logging it.
	Health   *health.Registry
	Postgres *health.Condition // nil when DB is nil
	NATS     *health.Condition
	// Tracing gives each service its tracer (Tracer(name)); no-op tracers
	// when OTEL_* turns tracing off.
	Tracing *tracing.Tracing
}

// Service is one of the three services as the process runs it.
type Service interface {
	// Register adds the service's HTTP routes.
	Register(e *echo.Echo)
	// Run does the background work (consumers) until ctx ends, then finishes
	// what is in flight and returns.
	Run(ctx context.Context) error
}

// Builder builds a service from the shared dependencies.
type Builder func(ctx context.Context, d Deps) (Service, error)

// Options configure Run.
type Options struct {
	Name     string // process name, for NATS and logs
	Common   config.Common
	Log      *slog.Logger
	NeedDB   bool
	NATSOpts []nats.Option // e.g. nats.InProcessServer for notifyd
	Services []Builder
	// Listener, when set, is served instead of listening on Common.HTTPAddr
	// (tests pass a listener on port 0).
	Listener net.Listener
	// Ready, when set, is called once the services are built and their
	// routes served (readiness may still wait for their consumers).
	Ready func(addr string)
	// ShutdownGrace bounds the shutdown of the HTTP server and services.
	ShutdownGrace time.Duration
	// Extra lets the caller add routes (notifyd's demo page).
	Extra func(e *echo.Echo, d Deps)
}

// Run runs the services until ctx ends. It returns nil when ctx ends,
// whether set-up had finished or not.
func Run(ctx context.Context, o Options) (err error) {
	log := o.Log
	if o.ShutdownGrace == 0 {
		o.ShutdownGrace = 20 * time.Second
	}
	reg := httpx.NewRegistry()
	buildinfo.Register(reg, o.Name)
	hr := health.New(log, reg, health.Remind)
	natsCond := hr.Condition("nats")
	var pgCond *health.Condition
	if o.NeedDB {
		pgCond = hr.Condition("postgres")
	}
	setupCond := hr.Condition("setup")

	// Alive first: the ops endpoints answer while the rest is set up.
	ln := o.Listener
	if ln == nil {
		if ln, err = netx.Listen("HTTP_ADDR", o.Common.HTTPAddr); err != nil {
			return err
		}
	}
	front := &frontHandler{ops: opsMux(hr, reg), starting: startingHandler(hr)}
	srv := httpx.NewServer(front, o.Common.HTTP)
	errc := make(chan error, len(o.Services)+1)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	}()
	log.Info("serving", "name", o.Name, "addr", ln.Addr().String(), "build", buildinfo.Get().String())
	runCtx, stopServices := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServices()
	var wg sync.WaitGroup
	var closers []func() // connections, closed once the services have stopped
	tr := tracing.New(o.Common.Tracing, log)
	closers = append(closers, func() {
		// After the services: their last spans are exported too.
		shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if terr := tr.Shutdown(shutCtx); terr != nil {
			log.Warn("tracing shutdown", "err", terr)
		}
	})
	defer func() {
		hr.Stopping()
		shutCtx, cancelShut := context.WithTimeout(context.Background(), o.ShutdownGrace)
		defer cancelShut()
		// Stop consuming first and let in-flight work finish while HTTP still
		// serves (/readyz says not ready): a gateway closes its clients one
		// by one, and long-polling ones need HTTP for that. Then HTTP drains.
		stopServices()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-shutCtx.Done():
			log.Warn("services did not stop within the grace period")
		}
		if serr := srv.Shutdown(shutCtx); serr != nil {
			log.Warn("http shutdown", "err", serr)
			_ = srv.Close()
		}
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()

	// NATS: the connection is retried forever, from the first attempt on.
	natsOpts := append(append([]nats.Option(nil), o.NATSOpts...),
		nats.RetryOnFailedConnect(true),
		nats.ConnectHandler(func(*nats.Conn) { natsCond.OK() }),
		nats.DisconnectErrHandler(func(c *nats.Conn, err error) {
			if c.IsClosed() || c.IsDraining() {
				return // our own shutdown
			}
			if err == nil {
				err = errors.New("disconnected")
			}
			natsCond.Fail(err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) { natsCond.OK() }),
	)
	nc, err := natsx.Connect(o.Common.NATSURL, o.Common.NATSAuth, o.Name, log, natsOpts...)
	if err != nil {
		return err
	}
	if nc.IsConnected() {
		natsCond.OK()
	} else {
		natsCond.Fail(errors.New("cannot connect yet; trying again"))
	}
	closers = append(closers, func() {
		if derr := nc.Drain(); derr != nil && !errors.Is(derr, nats.ErrConnectionClosed) {
			log.Warn("nats drain", "err", derr)
		}
	})
	// Disconnections are reported by the handlers above; the watch keeps
	// reminding while one lasts. Being connected does not end an outage a
	// JetStream call reported: that call's success does.
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
			if !nc.IsConnected() {
				natsCond.Fail(fmt.Errorf("not connected (%s)", nc.Status()))
			}
		}
	})
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if err := natsx.EnsureStreams(ctx, js, o.Common.Streams, hr); err != nil {
		return nil // ctx ended during set-up
	}

	var db *sqlx.DB
	if o.NeedDB {
		if natsx.Ensure(ctx, pgCond, func(ctx context.Context) error {
			db, err = postgres.Open(ctx, o.Common.DatabaseURL, 20)
			return err
		}) != nil {
			return nil
		}
		closers = append(closers, func() { _ = db.Close() })
		wg.Go(func() { pgCond.Watch(runCtx, time.Second, db.PingContext) })
	}

	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var jwks *auth.JWKS
	if o.Common.JWT.Secret == "" && o.Common.JWT.JWKSURL != "" {
		if jwks, err = auth.NewJWKS(setupCtx, o.Common.JWT.JWKSURL, log); err != nil {
			return err
		}
		go jwks.Run(ctx, 10*time.Minute)
	}
	verifier, err := auth.NewVerifier(o.Common.JWT, jwks)
	if err != nil {
		return err
	}

	e := httpx.NewEcho(log, reg)
	e.Use(httpx.CORS(o.Common.APIAllowedOrigins))
	deps := Deps{Log: log, DB: db, NC: nc, JS: js, Metrics: reg, Verifier: verifier, Common: o.Common,
		Health: hr, Postgres: pgCond, NATS: natsCond, Tracing: tr}

	// Builders may wait (a bucket being set up): they get ctx, and a
	// shutdown during set-up is no failure.
	services := make([]Service, 0, len(o.Services))
	for _, build := range o.Services {
		s, err := build(ctx, deps)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		s.Register(e)
		services = append(services, s)
	}
	if o.Extra != nil {
		o.Extra(e, deps)
	}
	front.full.Store(e)
	setupCond.OK()
	if o.Ready != nil {
		o.Ready(ln.Addr().String())
	}

	for _, s := range services {
		wg.Go(func() {
			if err := s.Run(runCtx); err != nil {
				errc <- err
			}
		})
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down", "name", o.Name)
	case err = <-errc:
		log.Error("stopping after failure", "err", err)
	}
	return err
}

// frontHandler serves the ops endpoints itself, from the first second and
// outside the services' middleware (a probe answered 503 during an outage
// is no request error to log), and the rest through the services' Echo
// once they are built.
type frontHandler struct {
	ops      *http.ServeMux
	starting http.Handler
	full     atomic.Pointer[echo.Echo]
}

func (f *frontHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Only the ops paths can match the ops mux; asking it about any other
	// path costs its search for the methods a 405 would list, on every
	// request of the API.
	if isOpsPath(r.URL.Path) {
		if h, pattern := f.ops.Handler(r); pattern != "" {
			h.ServeHTTP(w, r)
			return
		}
	}
	if e := f.full.Load(); e != nil {
		e.ServeHTTP(w, r)
		return
	}
	f.starting.ServeHTTP(w, r)
}

// opsMux serves /healthz (alive), /readyz (every condition met) and
// /metrics.
func opsMux(hr *health.Registry, reg prometheus.Gatherer) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", health.Alive)
	mux.HandleFunc("GET /readyz", hr.Ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

// isOpsPath says whether p is one of opsMux's paths.
func isOpsPath(p string) bool { return p == "/healthz" || p == "/readyz" || p == "/metrics" }

// startingHandler answers 503 with what is waited for until the services
// serve.
func startingHandler(hr *health.Registry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, status := hr.Status()
		var waiting []string
		for name, st := range status {
			if st != "ok" {
				waiting = append(waiting, name+": "+st)
			}
		}
		sort.Strings(waiting)
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"type": "about:blank", "title": "Service Unavailable", "status": http.StatusServiceUnavailable,
			"detail": "starting; waiting for " + strings.Join(waiting, ", "),
		})
	})
}
