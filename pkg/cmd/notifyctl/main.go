// Command notifyctl is the developer's tool for Xpeditis Notify: it mints
// development tokens, publishes events, verifies webhook signatures, and drives the benchmarks.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/xpeditis/notify/pkg/buildinfo"
)

const usage = `usage: notifyctl <command> [flags]

commands:
  token     mint a development JWT (HS256) for a user, organization and role
  publish   publish a domain event to the EVENTS stream and print its id
  verify    verify a webhook delivery's signature (secret, raw body, headers)
  listen    forward a development notifyd's webhook deliveries to a local URL
  bench     run a benchmark (ingest, list, gateway, gateway-report)
  version   print the version and commit it was built from (also --version)

Run 'notifyctl <command> -h' for the flags and examples of a command.
Flags that name the same thing are the same in every command: -nats (default
$NATS_URL), -secret (the JWT secret, default $JWT_SECRET), -org, -user, -db
(default $DATABASE_URL).`

// stdio is where a command reads and writes; tests pass buffers.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr})
	stop()
	os.Exit(code)
}

// run runs one command line and returns the exit code: 0 when it succeeded
// or printed the help that was asked for, 2 for a usage error, 1 otherwise.
func run(ctx context.Context, args []string, io stdio) int {
	if len(args) == 0 {
		fmt.Fprintln(io.err, usage)
		return 2
	}
	var err error
	rest := args[1:]
	switch args[0] {
	case "token":
		err = runToken(rest, io)
	case "publish":
		err = runPublish(ctx, rest, io)
	case "verify":
		err = runVerify(rest, io)
	case "listen":
		err = runListen(ctx, rest, io)
	case "bench":
		err = runBench(ctx, rest, io)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(io.out, usage)
		return 0
	case "--version", "-version", "version":
		buildinfo.PrintVersion(io.out, "notifyctl")
		return 0
	default:
		err = usageError{fmt.Errorf("unknown command %q\n\n%s", args[0], usage)}
	}
	var ue usageError
	switch {
	case err == nil, errors.Is(err, errHelpShown):
		return 0
	case errors.As(err, &ue):
		if ue.err != nil {
			fmt.Fprintln(io.err, "notifyctl:", ue.err)
		}
		return 2
	default:
		fmt.Fprintln(io.err, "notifyctl:", err)
		return 1
	}
}
