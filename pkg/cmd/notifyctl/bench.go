package main

import (
	"context"
	"fmt"
)

const benchUsage = `usage: notifyctl bench <benchmark> [flags]

benchmarks:
  ingest          events through JetStream into notification-api's table, against a running service
  list            GET /api/v1/notifications at a constant rate over a large seeded table
  gateway         one Socket.IO server under many clients (the gateway or the Node.js reference)
  gateway-report  print saved gateway results side by side and check them against the targets

Run 'notifyctl bench <benchmark> -h' for its flags and examples; BENCHMARKS.md
has the figures and the make targets that run them.

examples:
  notifyctl bench ingest -events 200000 -db "$DATABASE_URL"
  notifyctl bench list -h`

// runBench dispatches to one benchmark; each lives in its own bench_*.go.
func runBench(ctx context.Context, args []string, io stdio) error {
	if len(args) == 0 {
		fmt.Fprintln(io.err, benchUsage)
		return usageError{}
	}
	rest := args[1:]
	switch args[0] {
	case "gateway":
		return runBenchGateway(ctx, rest, io)
	case "gateway-worker":
		return runBenchGatewayWorker(ctx, rest, io)
	case "gateway-report":
		return runBenchGatewayReport(rest, io)
	case "ingest":
		return runBenchIngest(ctx, rest, io)
	case "list":
		return runBenchList(ctx, rest, io)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(io.out, benchUsage)
		return errHelpShown
	}
	return usageError{fmt.Errorf("bench: unknown benchmark %q\n\n%s", args[0], benchUsage)}
}
