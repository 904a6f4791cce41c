// Command chaos is `make chaos`: it runs the chaos suite (package suite)
// against a cluster of the services' binaries and prints a table per
// fault. It exits 1 when an acked event is missing, a row is duplicated or
// a socket client misses a message.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/xpeditis/notify/scripts/chaos/suite"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

func run() error {
	short := flag.Bool("short", os.Getenv("CHAOS") == "short", "one fault of each kind, under 5 minutes (also CHAOS=short)")
	faults := flag.String("faults", "", "comma-separated faults (default: the full or short suite): sigkill:<service>, sigterm:<service>, nats-leader, postgres-stop, partition")
	rate := flag.Int("rate", 300, "events per second")
	users := flag.Int("users", 20, "recipients")
	tabs := flag.Int("tabs", 2, "Socket.IO clients per recipient")
	keep := flag.Bool("keep", false, "keep the work directory (logs, data) at exit")
	root := flag.String("root", ".", "the repository")
	flag.Parse()

	cfg := suite.Config{Rate: *rate, Users: *users, TabsPerUser: *tabs, KeepDir: *keep, Out: os.Stdout, Log: os.Stderr,
		Baseline: 15 * time.Second, Window: 35 * time.Second, Lead: 3 * time.Second, Settle: 150 * time.Second}
	spec, limit := suite.FullFaults, 40*time.Minute
	if *short {
		spec, limit = suite.ShortFaults, 8*time.Minute
		cfg.Baseline, cfg.Window, cfg.Settle = 6*time.Second, 20*time.Second, 60*time.Second
	}
	if *faults != "" {
		spec = *faults
	}
	var err error
	if cfg.Faults, err = suite.ParseFaults(spec); err != nil {
		return err
	}
	if cfg.Root, err = filepath.Abs(*root); err != nil {
		return err
	}
	// Ctrl-C and SIGTERM end the run; every process is stopped on the way out.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()

	began := time.Now()
	rep, err := suite.Run(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "\nChaos suite, %s, %d events/s, %d users × %d sockets, %s in all\n\n", spec, *rate, *users, *tabs, time.Since(began).Round(time.Second))
	rep.Print(os.Stdout)
	for _, e := range rep.BrowserErrors {
		fmt.Fprintln(os.Stdout, "- socket.io connect_error:", e)
	}
	if failed := rep.Failed(); len(failed) > 0 {
		fmt.Fprintln(os.Stdout, "\nFAIL")
		for _, f := range failed {
			fmt.Fprintln(os.Stdout, "-", f)
		}
		os.Exit(1)
	}
	fmt.Fprintln(os.Stdout, "\nPASS")
	return nil
}
