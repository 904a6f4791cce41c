// Package realtimegateway assembles the realtime gateway: Socket.IO and
// plain WebSocket clients fed from the NOTIFY stream. notifyd composes it
// with the other services through New; the service's own binary runs it
// through Main.
package realtimegateway

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime/debug"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/xpeditis/notify/pkg/app"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/logx"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/gateway"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/hub"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/recovery"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/wheel"
)

// Name of the service, for NATS and logs.
const Name = "realtime-gateway"

// Config of the gateway beyond the common settings.
type Config struct {
	PingInterval    time.Duration  // GATEWAY_PING_INTERVAL
	PingTimeout     time.Duration  // GATEWAY_PING_TIMEOUT
	ConnectTimeout  time.Duration  // GATEWAY_CONNECT_TIMEOUT: CONNECT or /ws auth after the handshake
	WriteTimeout    time.Duration  // GATEWAY_WRITE_TIMEOUT
	MaxPayload      int            // GATEWAY_MAX_PAYLOAD: bytes of one client message or polling body
	SendQueue       int            // GATEWAY_SEND_QUEUE: frames queued per connection before it is slow
	SendBuffer      int            // GATEWAY_SEND_BUFFER: bytes queued per connection before it is slow
	MaxPendingPerIP int            // GATEWAY_MAX_PENDING_PER_IP: unauthenticated connections per client address (0: no limit)
	TrustedProxies  []netip.Prefix // GATEWAY_TRUSTED_PROXIES: CIDRs of proxies whose X-Forwarded-For names the client
	MaxPending      int            // GATEWAY_MAX_PENDING: unauthenticated connections in all
	MaxConnsPerUser int            // GATEWAY_MAX_CONNECTIONS_PER_USER
	RecoveryWindow  time.Duration  // GATEWAY_RECOVERY_WINDOW
	AllowedOrigins  []string       // GATEWAY_ALLOWED_ORIGINS: comma-separated, "*" for any
	Tick            time.Duration  // GATEWAY_TICK: resolution of heartbeats and deadlines
	HubBuffer       int            // GATEWAY_HUB_BUFFER: live messages between NATS and each dispatcher
	ShutdownGrace   time.Duration  // GATEWAY_SHUTDOWN_GRACE
	DrainRate       int            // GATEWAY_DRAIN_RATE: connections closed per second at shutdown
}

// ReadConfig reads the gateway's settings.
func ReadConfig(e *config.Env) Config {
	c := Config{
		PingInterval:    e.Duration("GATEWAY_PING_INTERVAL", 25*time.Second),
		PingTimeout:     e.Duration("GATEWAY_PING_TIMEOUT", 20*time.Second),
		ConnectTimeout:  e.Duration("GATEWAY_CONNECT_TIMEOUT", 20*time.Second),
		WriteTimeout:    e.Duration("GATEWAY_WRITE_TIMEOUT", 10*time.Second),
		MaxPayload:      e.Int("GATEWAY_MAX_PAYLOAD", 1_000_000),
		SendQueue:       e.Int("GATEWAY_SEND_QUEUE", 128),
		SendBuffer:      e.Int("GATEWAY_SEND_BUFFER", 1<<20),
		MaxPendingPerIP: e.Int("GATEWAY_MAX_PENDING_PER_IP", 64),
		TrustedProxies:  trustedProxies(e),
		MaxPending:      e.Int("GATEWAY_MAX_PENDING", 1024),
		MaxConnsPerUser: e.Int("GATEWAY_MAX_CONNECTIONS_PER_USER", 20),
		RecoveryWindow:  e.Duration("GATEWAY_RECOVERY_WINDOW", 2*time.Minute),
		AllowedOrigins:  e.Origins("GATEWAY_ALLOWED_ORIGINS"),
		Tick:            e.Duration("GATEWAY_TICK", 10*time.Millisecond),
		HubBuffer:       e.Int("GATEWAY_HUB_BUFFER", 1<<16),
		ShutdownGrace:   e.Duration("GATEWAY_SHUTDOWN_GRACE", 10*time.Second),
		DrainRate:       e.Int("GATEWAY_DRAIN_RATE", 1000),
	}
	positive := map[string]time.Duration{
		"GATEWAY_PING_INTERVAL": c.PingInterval, "GATEWAY_PING_TIMEOUT": c.PingTimeout,
		"GATEWAY_CONNECT_TIMEOUT": c.ConnectTimeout, "GATEWAY_WRITE_TIMEOUT": c.WriteTimeout,
		"GATEWAY_RECOVERY_WINDOW": c.RecoveryWindow, "GATEWAY_TICK": c.Tick, "GATEWAY_SHUTDOWN_GRACE": c.ShutdownGrace,
	}
	for name, d := range positive {
		if d <= 0 {
			e.Check(fmt.Errorf("%s must be positive", name))
		}
	}
	if c.Tick > c.PingTimeout/2 {
		e.Check(fmt.Errorf("GATEWAY_TICK (%s) must be at most half of GATEWAY_PING_TIMEOUT", c.Tick))
	}
	if c.MaxPayload < 1024 || c.MaxPayload > maxPayloadLimit {
		e.Check(fmt.Errorf("GATEWAY_MAX_PAYLOAD must be between 1024 and %d", maxPayloadLimit))
	}
	if c.SendQueue < 8 {
		e.Check(fmt.Errorf("GATEWAY_SEND_QUEUE must be at least 8"))
	}
	if c.SendBuffer < 2*hub.MaxMessageBytes {
		e.Check(fmt.Errorf("GATEWAY_SEND_BUFFER must be at least %d (two of the largest messages)", 2*hub.MaxMessageBytes))
	}
	if c.MaxPendingPerIP < 0 {
		e.Check(fmt.Errorf("GATEWAY_MAX_PENDING_PER_IP must be 0 (no limit) or more"))
	}
	if c.MaxPending < 1 {
		e.Check(fmt.Errorf("GATEWAY_MAX_PENDING must be at least 1"))
	}
	if c.MaxConnsPerUser < 1 {
		e.Check(fmt.Errorf("GATEWAY_MAX_CONNECTIONS_PER_USER must be at least 1"))
	}
	if c.DrainRate < 1 {
		e.Check(fmt.Errorf("GATEWAY_DRAIN_RATE must be at least 1"))
	}
	if c.HubBuffer < 1024 {
		e.Check(fmt.Errorf("GATEWAY_HUB_BUFFER must be at least 1024"))
	}
	return c
}

// maxPayloadLimit is the largest GATEWAY_MAX_PAYLOAD: 1 MiB, a little over
// the Engine.IO reference server's default of 1e6 bytes.
const maxPayloadLimit = 1 << 20

// wheelSlots is how many slots the timing wheel gets: one turn covers a
// ping interval and its timeout, so that a heartbeat's entry waits one turn.
func wheelSlots(c Config) int {
	return min(max(int((c.PingInterval+c.PingTimeout)/c.Tick)+2, 64), 1<<16)
}

// Service is the gateway.
type Service struct {
	server *gateway.Server
	hub    *hub.Hub
}

// New builds the gateway: its recovery bucket, fan-out hub and server.
func New(cfg Config) app.Builder {
	return func(ctx context.Context, d app.Deps) (app.Service, error) {
		store, err := recovery.Open(ctx, d.JS, cfg.RecoveryWindow, d.Common.Streams.Replicas, d.Health.Condition("bucket:"+recovery.Bucket))
		if err != nil {
			return nil, err
		}
		log := d.Log.With("component", Name)
		w := wheel.New(cfg.Tick, wheelSlots(cfg))
		h := hub.New(d.NC, log, hub.NewMetrics(d.Metrics), d.Tracing.Tracer(Name), cfg.MaxConnsPerUser, cfg.HubBuffer)
		srv := gateway.New(gateway.Options{
			PingInterval:    cfg.PingInterval,
			PingTimeout:     cfg.PingTimeout,
			ConnectTimeout:  cfg.ConnectTimeout,
			WriteTimeout:    cfg.WriteTimeout,
			MaxPayload:      cfg.MaxPayload,
			SendQueue:       cfg.SendQueue,
			SendBuffer:      cfg.SendBuffer,
			MaxPendingPerIP: cfg.MaxPendingPerIP,
			TrustedProxies:  cfg.TrustedProxies,
			MaxPending:      cfg.MaxPending,
			MaxConnsPerUser: cfg.MaxConnsPerUser,
			AllowedOrigins:  cfg.AllowedOrigins,
			ShutdownGrace:   cfg.ShutdownGrace,
			DrainRate:       cfg.DrainRate,
		}, log, d.Verifier, h, store, w, d.Metrics)
		return &Service{server: srv, hub: h}, nil
	}
}

// Register adds /socket.io/ and /ws.
func (s *Service) Register(e *echo.Echo) { s.server.Register(e) }

// Run fans messages out until ctx ends, then drains the connections.
func (s *Service) Run(ctx context.Context) error {
	hubCtx, stopHub := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.hub.Run(hubCtx); close(done) }()
	err := s.server.Run(ctx)
	stopHub()
	<-done
	s.hub.Close()
	return err
}

// Server returns the connection layer (tests).
func (s *Service) Server() *gateway.Server { return s.server }

// gcPercent is the gateway binary's GOGC unless the environment sets one.
// Its memory is mostly long-lived connection state, and each handshake
// leaves some kilobytes of garbage (the HTTP server's buffers, the token
// parse); collecting at half the default growth keeps that garbage from
// counting as much as the connections themselves, for a little CPU.
const gcPercent = 50

// Main runs the gateway alone, configured from the environment.
func Main(ctx context.Context, _ []string) error {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
	env := config.FromOS()
	common := config.ReadCommon(env, false, true)
	cfg := ReadConfig(env)
	if err := env.Err(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := logx.New(os.Stderr, common.LogLevel).With("service", Name)
	return app.Run(ctx, app.Options{Name: Name, Common: common, Log: log, Services: []app.Builder{New(cfg)}, ShutdownGrace: cfg.ShutdownGrace + 5*time.Second})
}

// trustedProxies reads GATEWAY_TRUSTED_PROXIES: addresses or CIDR prefixes,
// comma-separated, of the proxies in front of the gateway (empty: none, the
// TCP peer is the client).
func trustedProxies(e *config.Env) []netip.Prefix {
	var out []netip.Prefix
	for _, v := range e.List("GATEWAY_TRUSTED_PROXIES", nil) {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				e.Check(fmt.Errorf("GATEWAY_TRUSTED_PROXIES: %q is neither an address nor a CIDR prefix", v))
				continue
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out
}
