// Command notifyctl is the developer's tool for Xpeditis Notify: it mints
// development tokens, publishes events, verifies webhook signatures, and drives the benchmarks.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: notifyctl <command> [flags]

commands:
  token     mint a development JWT (HS256) for a user, organization and role
  publish   publish a domain event to JetStream
  verify    verify a webhook delivery's signature (secret, raw body, headers)
  bench     run a benchmark (ingest, list)

Run 'notifyctl <command> -h' for the flags of a command.`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "token":
		err = runToken(args)
	case "publish":
		err = runPublish(ctx, args)
	case "verify":
		err = runVerify(args, os.Stdin, os.Stdout)
	case "bench":
		err = runBench(ctx, args)
	case "-h", "--help", "help":
		fmt.Println(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "notifyctl: unknown command %q\n\n%s\n", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "notifyctl:", err)
		os.Exit(1)
	}
}
