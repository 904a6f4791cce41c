package main

import (
	"context"
	"flag"
	"os"
	"time"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/bench"
)

// runBenchIngest is `notifyctl bench ingest`: events through JetStream into
// notification-api's table, against a running service.
func runBenchIngest(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench ingest", flag.ExitOnError)
	o := bench.IngestOptions{Progress: os.Stderr}
	fs.StringVar(&o.NATSURL, "nats", envOr("NATS_URL", "nats://127.0.0.1:4223"), "NATS URL of the service's server (default: $NATS_URL, else notifyd's)")
	fs.StringVar(&o.DatabaseURL, "db", os.Getenv("DATABASE_URL"), "the service's PostgreSQL (default: $DATABASE_URL)")
	fs.IntVar(&o.Events, "events", 200_000, "events to publish, one recipient each")
	fs.IntVar(&o.Users, "users", 10_000, "recipients are drawn from this many users")
	fs.Float64Var(&o.Rate, "rate", 0, "events/s to publish at (0: as fast as the stream acks them)")
	fs.IntVar(&o.MaxInFlight, "inflight", 4096, "unacknowledged publishes at most")
	fs.StringVar(&o.Consumer, "consumer", "notification-api", "durable name of the ingest consumer on EVENTS")
	fs.IntVar(&o.ServicePID, "pid", 0, "process id of the service, to report its CPU time (when it runs on this machine)")
	fs.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "how long the service may take to catch up")
	fs.BoolVar(&o.Copy, "copy", true, "also time one COPY of the same rows into an empty copy of the table (the ceiling)")
	_ = fs.Parse(args)
	res, err := bench.Ingest(ctx, o)
	if err != nil {
		return err
	}
	res.Report(os.Stdout)
	return res.Check()
}

// runBenchList is `notifyctl bench list`: GET /api/v1/notifications at a
// constant arrival rate over a large seeded table.
func runBenchList(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench list", flag.ExitOnError)
	o := bench.ListOptions{Progress: os.Stderr}
	fs.StringVar(&o.BaseURL, "url", "http://127.0.0.1:8080", "base URL of the service")
	fs.StringVar(&o.DatabaseURL, "db", os.Getenv("DATABASE_URL"), "the service's PostgreSQL, for the seed and the query plans (default: $DATABASE_URL)")
	fs.IntVar(&o.Seed.Rows, "rows", 5_000_000, "notifications in the seed")
	fs.IntVar(&o.Seed.Users, "users", 10_000, "users the seed spreads them over, evenly")
	fs.DurationVar(&o.Seed.History, "history", 180*24*time.Hour, "time span of the seed")
	fs.IntVar(&o.Seed.Streams, "copy-streams", 2, "parallel COPY streams when seeding")
	fs.Float64Var(&o.Rate, "rate", 500, "requests/s (constant arrival rate)")
	fs.DurationVar(&o.Duration, "duration", 30*time.Second, "measured time of each load")
	fs.DurationVar(&o.Warmup, "warmup", 3*time.Second, "unmeasured time at the same rate before each load")
	fs.IntVar(&o.Limit, "limit", 20, "page size")
	fs.IntVar(&o.DeepPage, "deep-page", 20, "page of the cursor chain for the deep load")
	fs.IntVar(&o.DeepUsers, "deep-users", 1000, "users whose cursor chain is walked to the deep page")
	fs.StringVar(&o.Secret, "secret", envOr("JWT_SECRET", auth.DevSecret), "HS256 secret to mint tokens with (default: $JWT_SECRET, else the development secret)")
	fs.IntVar(&o.ServicePID, "pid", 0, "process id of the service, to report its CPU time (when it runs on this machine)")
	fs.StringVar(&o.Issuer, "issuer", os.Getenv("JWT_ISSUER"), "iss claim")
	fs.StringVar(&o.Audience, "audience", os.Getenv("JWT_AUDIENCE"), "aud claim")
	_ = fs.Parse(args)
	res, err := bench.List(ctx, o)
	if err != nil {
		return err
	}
	res.Report(os.Stdout)
	return res.Check()
}
