// Command webhook-dispatcher delivers domain events to the webhooks that
// organizations register, signed, with retries, and serves the webhook API.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/xpeditis/notify/pkg/buildinfo"
	"github.com/xpeditis/notify/services/webhook-dispatcher/webhookdispatcher"
)

func main() {
	if buildinfo.VersionRequested(os.Args[1:]) {
		buildinfo.PrintVersion(os.Stdout, "webhook-dispatcher")
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := webhookdispatcher.Main(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "webhook-dispatcher:", err)
		os.Exit(1)
	}
}
