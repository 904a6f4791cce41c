package main

import (
	"context"
	"fmt"
)

func runBench(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("bench: name a benchmark: ingest, list")
	}
	return fmt.Errorf("bench: unknown benchmark %q", args[0])
}
