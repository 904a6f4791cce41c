// Command notification-api turns domain events into per-user notifications
// and serves the notification REST API.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/xpeditis/notify/pkg/buildinfo"
	"github.com/xpeditis/notify/services/notification-api/notificationapi"
)

func main() {
	if buildinfo.VersionRequested(os.Args[1:]) {
		buildinfo.PrintVersion(os.Stdout, "notification-api")
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := notificationapi.Main(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "notification-api:", err)
		os.Exit(1)
	}
}
