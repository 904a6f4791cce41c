// Command realtime-gateway-pprof is the realtime gateway with Go's profiler
// on a separate, loopback-only port (PPROF_ADDR, default 127.0.0.1:38085),
// for make bench-gateway PROFILE=1. It is never deployed: the profiler
// shows internals that production ports must not.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/xpeditis/notify/services/realtime-gateway/realtimegateway"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	addr := os.Getenv("PPROF_ADDR")
	if addr == "" {
		addr = "127.0.0.1:38085"
	}
	if err := run(ctx, addr); err != nil {
		fmt.Fprintln(os.Stderr, "realtime-gateway-pprof:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("PPROF_ADDR: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("PPROF_ADDR must be a loopback address, not %q", addr)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "realtime-gateway-pprof: profiler:", err)
		}
	}()
	defer srv.Close()
	return realtimegateway.Main(ctx, os.Args[1:])
}
