// Command webhook-dispatcher-pprof is the webhook dispatcher with Go's profiler
// on a separate, loopback-only port (PPROF_ADDR, default 127.0.0.1:38086),
// for make bench-webhooks PROFILE=1. It is never deployed: the profiler
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

	"github.com/xpeditis/notify/services/webhook-dispatcher/webhookdispatcher"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	addr := os.Getenv("PPROF_ADDR")
	if addr == "" {
		addr = "127.0.0.1:38086"
	}
	if err := run(ctx, addr); err != nil {
		fmt.Fprintln(os.Stderr, "webhook-dispatcher-pprof:", err)
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
			fmt.Fprintln(os.Stderr, "webhook-dispatcher-pprof: profiler:", err)
		}
	}()
	defer srv.Close()
	return webhookdispatcher.Main(ctx, os.Args[1:])
}
