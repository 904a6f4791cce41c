package main

import (
	"context"
	"fmt"
)

// runBench dispatches to one benchmark; each lives in its own bench_*.go.
func runBench(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("bench: name a benchmark: ingest, list, gateway, gateway-report")
	}
	switch args[0] {
	case "gateway":
		return runBenchGateway(ctx, args[1:])
	case "gateway-worker":
		return runBenchGatewayWorker(ctx, args[1:])
	case "gateway-report":
		return runBenchGatewayReport(args[1:])
	case "ingest":
		return runBenchIngest(ctx, args[1:])
	case "list":
		return runBenchList(ctx, args[1:])
	}
	return fmt.Errorf("bench: unknown benchmark %q", args[0])
}
