// Package profiled runs a service with Go's profiler on a separate,
// loopback-only port, for the benchmarks' PROFILE=1 runs (the commands
// realtime-gateway-pprof and webhook-dispatcher-pprof). Such a build is
// never deployed: the profiler shows internals that production ports must
// not.
package profiled

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
)

// Main runs serve (a service's Main) with the profiler on PPROF_ADDR
// (defaultAddr when unset), and exits the process with its error.
func Main(name, defaultAddr string, serve func(ctx context.Context, args []string) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	addr := os.Getenv("PPROF_ADDR")
	if addr == "" {
		addr = defaultAddr
	}
	if err := run(ctx, name, addr, serve); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, name, addr string, serve func(ctx context.Context, args []string) error) error {
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
			fmt.Fprintf(os.Stderr, "%s: profiler: %v\n", name, err)
		}
	}()
	defer srv.Close()
	return serve(ctx, os.Args[1:])
}
