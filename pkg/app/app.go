// Package app runs services: it opens the shared connections (NATS,
// JetStream, PostgreSQL), builds each service with them, serves their routes
// and the ops endpoints on one HTTP port, and shuts everything down in order
// when the context ends. Each service binary runs one service through it;
// notifyd runs all three.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/httpx"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/netx"
	"github.com/xpeditis/notify/pkg/postgres"
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
	// Ready, when set, is called once the HTTP server accepts requests.
	Ready func(addr string)
	// ShutdownGrace bounds the shutdown of the HTTP server and services.
	ShutdownGrace time.Duration
	// Extra lets the caller add routes (notifyd's demo page).
	Extra func(e *echo.Echo, d Deps)
}

// Run runs the services until ctx ends.
func Run(ctx context.Context, o Options) (err error) {
	log := o.Log
	if o.ShutdownGrace == 0 {
		o.ShutdownGrace = 20 * time.Second
	}
	nc, err := natsx.Connect(o.Common.NATSURL, o.Name, log, o.NATSOpts...)
	if err != nil {
		return err
	}
	defer func() {
		if derr := nc.Drain(); derr != nil && !errors.Is(derr, nats.ErrConnectionClosed) {
			log.Warn("nats drain", "err", derr)
		}
	}()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := natsx.EnsureStreams(setupCtx, js, o.Common.Streams); err != nil {
		return err
	}

	var db *sqlx.DB
	if o.NeedDB {
		db, err = postgres.Open(setupCtx, o.Common.DatabaseURL, 20)
		if err != nil {
			return err
		}
		defer db.Close()
	}

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

	reg := httpx.NewRegistry()
	e := httpx.NewEcho(log, reg)
	deps := Deps{Log: log, DB: db, NC: nc, JS: js, Metrics: reg, Verifier: verifier, Common: o.Common}
	checks := []httpx.Check{{Name: "nats", Fn: func(context.Context) error {
		if !nc.IsConnected() {
			return errors.New("not connected")
		}
		return nil
	}}}
	if db != nil {
		checks = append(checks, httpx.Check{Name: "postgres", Fn: db.PingContext})
	}
	httpx.RegisterOps(e, reg, checks...)

	services := make([]Service, 0, len(o.Services))
	for _, build := range o.Services {
		s, err := build(setupCtx, deps)
		if err != nil {
			return err
		}
		s.Register(e)
		services = append(services, s)
	}
	if o.Extra != nil {
		o.Extra(e, deps)
	}

	ln := o.Listener
	if ln == nil {
		if ln, err = netx.Listen("HTTP_ADDR", o.Common.HTTPAddr); err != nil {
			return err
		}
	}
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	log.Info("serving", "name", o.Name, "addr", ln.Addr().String())
	if o.Ready != nil {
		o.Ready(ln.Addr().String())
	}

	runCtx, stopServices := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServices()
	errc := make(chan error, len(services)+1)
	var wg sync.WaitGroup
	for _, s := range services {
		wg.Go(func() {
			if err := s.Run(runCtx); err != nil {
				errc <- err
			}
		})
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	}()

	select {
	case <-ctx.Done():
		log.Info("shutting down", "name", o.Name)
	case err = <-errc:
		log.Error("stopping after failure", "err", err)
	}
	shutCtx, cancelShut := context.WithTimeout(context.Background(), o.ShutdownGrace)
	defer cancelShut()
	// Stop consuming first and let in-flight work finish, while HTTP drains.
	stopServices()
	if serr := srv.Shutdown(shutCtx); serr != nil {
		log.Warn("http shutdown", "err", serr)
		_ = srv.Close()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-shutCtx.Done():
		log.Warn("services did not stop within the grace period")
	}
	return err
}
