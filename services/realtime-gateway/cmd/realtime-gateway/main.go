// Command realtime-gateway delivers users' notifications to their browsers
// (Socket.IO) and other clients (plain WebSocket).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/xpeditis/notify/pkg/buildinfo"
	"github.com/xpeditis/notify/services/realtime-gateway/realtimegateway"
)

func main() {
	if buildinfo.VersionRequested(os.Args[1:]) {
		buildinfo.PrintVersion(os.Stdout, "realtime-gateway")
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := realtimegateway.Main(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "realtime-gateway:", err)
		os.Exit(1)
	}
}
