package main

import (
	"context"
	"time"

	"github.com/xpeditis/notify/pkg/cmd/cli"
	"github.com/xpeditis/notify/scripts/bench/napibench"
)

// runBenchIngest is `notifybench ingest`: events through JetStream into
// notification-api's table, against a running service.
func runBenchIngest(ctx context.Context, args []string, io cli.Stdio) error {
	c := cli.New("notifybench", "ingest", "Publishes events through JetStream and times notification-api storing them\n(a running service: notifyd or notification-api), and the COPY ceiling.",
		`notifybench ingest -events 200000 -db "$DATABASE_URL"`,
		`notifybench ingest -nats nats://127.0.0.1:4223 -rate 10000 -copy=false -pid "$(pgrep -n notifyd)"`)
	fs := c.FS
	o := napibench.IngestOptions{Progress: io.Err}
	c.NATSFlag(&o.NATSURL)
	c.DBFlag(&o.DatabaseURL)
	fs.IntVar(&o.Events, "events", 200_000, "events to publish")
	fs.IntVar(&o.Recipients, "recipients", 1, "recipients of each event (distinct users)")
	fs.IntVar(&o.Users, "users", 10_000, "recipients are drawn from this many users")
	fs.Float64Var(&o.Rate, "rate", 0, "events/s to publish at (0: as fast as the stream acks them)")
	fs.IntVar(&o.MaxInFlight, "inflight", 4096, "unacknowledged publishes at most")
	fs.StringVar(&o.Consumer, "consumer", "notification-api", "durable name of the ingest consumer on EVENTS")
	fs.IntVar(&o.ServicePID, "pid", 0, "process id of the service, to report its CPU time (when it runs on this machine)")
	fs.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "how long the service may take to catch up")
	fs.BoolVar(&o.Copy, "copy", true, "also time one COPY of the same rows into an empty copy of the table (the ceiling)")
	if err := c.Parse(args, io); err != nil {
		return err
	}
	res, err := napibench.Ingest(ctx, o)
	if err != nil {
		return err
	}
	res.Report(io.Out)
	return res.Check()
}

// runBenchList is `notifybench list`: GET /api/v1/notifications at a
// constant arrival rate over a large seeded table.
func runBenchList(ctx context.Context, args []string, io cli.Stdio) error {
	c := cli.New("notifybench", "list", "Seeds a large notifications table, then reads pages at a constant arrival rate\nfrom a running notification-api (or notifyd) and reports latency percentiles.",
		`notifybench list -rows 5000000 -users 10000 -rate 500 -duration 30s -db "$DATABASE_URL"`,
		`notifybench list -url http://127.0.0.1:8080 -rows 100000 -rate 200 -duration 10s`)
	fs := c.FS
	o := napibench.ListOptions{Progress: io.Err}
	fs.StringVar(&o.BaseURL, "url", "http://127.0.0.1:8080", "base URL of the service")
	c.DBFlag(&o.DatabaseURL)
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
	c.SecretFlag(&o.Secret)
	fs.IntVar(&o.ServicePID, "pid", 0, "process id of the service, to report its CPU time (when it runs on this machine)")
	c.FromEnv(&o.Issuer, "issuer", "JWT_ISSUER", "", "none", "iss claim of the tokens")
	c.FromEnv(&o.Audience, "audience", "JWT_AUDIENCE", "", "none", "aud claim of the tokens")
	if err := c.Parse(args, io); err != nil {
		return err
	}
	res, err := napibench.List(ctx, o)
	if err != nil {
		return err
	}
	res.Report(io.Out)
	return res.Check()
}
