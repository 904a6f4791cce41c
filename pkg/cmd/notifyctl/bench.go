package main

import (
	"context"
	"fmt"
)

// runBench dispatches to one benchmark; each lives in its own bench_*.go.
func runBench(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("bench: name a benchmark: ingest, list")
	}
	switch args[0] {
	case "ingest":
		return runBenchIngest(ctx, args[1:])
	case "list":
		return runBenchList(ctx, args[1:])
	}
	return fmt.Errorf("bench: unknown benchmark %q", args[0])
}
