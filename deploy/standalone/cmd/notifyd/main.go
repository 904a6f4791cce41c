// Command notifyd runs Xpeditis Notify in one process: the three services
// on one HTTP port, over an embedded NATS server with JetStream.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/xpeditis/notify/deploy/standalone/notifyd"
	"github.com/xpeditis/notify/pkg/buildinfo"
)

func main() {
	if buildinfo.VersionRequested(os.Args[1:]) {
		buildinfo.PrintVersion(os.Stdout, "notifyd")
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := notifyd.Main(ctx, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "notifyd:", err)
		os.Exit(1)
	}
}
