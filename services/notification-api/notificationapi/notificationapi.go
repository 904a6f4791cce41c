// Package notificationapi assembles the notification-api service: the
// ingest consumer and the REST API over one store. notifyd composes it with
// the other services through New; the service's own binary runs it through
// Main.
package notificationapi

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/xpeditis/notify/pkg/app"
	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/logx"
	"github.com/xpeditis/notify/pkg/postgres"
	"github.com/xpeditis/notify/pkg/ratelimit"
	"github.com/xpeditis/notify/services/notification-api/internal/api"
	"github.com/xpeditis/notify/services/notification-api/internal/ingest"
	"github.com/xpeditis/notify/services/notification-api/internal/store"
	"github.com/xpeditis/notify/services/notification-api/migrations"
)

// Name of the service: its durable consumer, its migrations, its logs.
const Name = "notification-api"

// Config of notification-api beyond the common settings.
type Config struct {
	// IngestBatch is how many events one fetch takes, and so the most rows
	// one insert statement writes (INGEST_BATCH).
	IngestBatch int
	// IngestMaxWait is how long a batch waits for more events after its
	// first (INGEST_MAX_WAIT). It is short because every event of a batch
	// waits for it; under load, batches fill from the backlog without
	// waiting. 20 ms with 2 workers gave a pipeline p99 of 92-315 ms at
	// 5,000 events/s, 2 ms with 4 workers 33 ms (BENCHMARKS.md).
	IngestMaxWait time.Duration
	// AckWait is the JetStream ack deadline of the consumer (INGEST_ACK_WAIT).
	AckWait time.Duration
	// IngestWorkers is how many batches are stored at once (INGEST_WORKERS).
	IngestWorkers int
	// Writes limits each user's PATCH and DELETE requests, per replica
	// (API_WRITES_PER_MINUTE, API_WRITE_BURST).
	Writes ratelimit.Limit
}

// ReadConfig reads the service's settings.
func ReadConfig(e *config.Env) Config {
	c := Config{
		IngestBatch:   e.Int("INGEST_BATCH", 500),
		IngestMaxWait: e.Duration("INGEST_MAX_WAIT", 2*time.Millisecond),
		AckWait:       e.Duration("INGEST_ACK_WAIT", 30*time.Second),
		IngestWorkers: e.Int("INGEST_WORKERS", 4),
		Writes:        ratelimit.Limit{PerMinute: e.Int("API_WRITES_PER_MINUTE", 120), Burst: e.Int("API_WRITE_BURST", 30)},
	}
	if c.Writes.PerMinute < 0 || c.Writes.Burst < 1 {
		e.Check(fmt.Errorf("API_WRITES_PER_MINUTE must be 0 (no limit) or more and API_WRITE_BURST at least 1"))
	}
	if c.IngestWorkers < 1 || c.IngestWorkers > 64 {
		e.Check(fmt.Errorf("INGEST_WORKERS must be between 1 and 64, not %d", c.IngestWorkers))
	}
	if c.IngestBatch < 1 || c.IngestBatch > 5000 {
		e.Check(fmt.Errorf("INGEST_BATCH must be between 1 and 5000, not %d", c.IngestBatch))
	}
	return c
}

// Service is notification-api.
type Service struct {
	api      *api.Handler
	ingest   *ingest.Consumer
	verifier *auth.Verifier
}

// New migrates the database and builds the service.
func New(cfg Config) app.Builder {
	return func(ctx context.Context, d app.Deps) (app.Service, error) {
		if err := postgres.Migrate(ctx, d.DB, Name, migrations.FS); err != nil {
			return nil, err
		}
		st := store.New(d.DB)
		consumer := ingest.New(d.JS, st, ingest.Config{
			Durable: Name,
			Batch:   cfg.IngestBatch,
			MaxWait: cfg.IngestMaxWait,
			AckWait: cfg.AckWait,
			Workers: cfg.IngestWorkers,
		}, ingest.Health{Consumer: d.Health.Condition("consumer:" + Name), Postgres: d.Postgres, NATS: d.NATS}, d.Log, d.Metrics, d.Tracing.Tracer(Name))
		return &Service{api: api.New(st, d.JS, d.Log, cfg.Writes), ingest: consumer, verifier: d.Verifier}, nil
	}
}

// Register adds the REST routes.
func (s *Service) Register(e *echo.Echo) { s.api.Register(e, s.verifier) }

// Run consumes events until ctx ends.
func (s *Service) Run(ctx context.Context) error { return s.ingest.Run(ctx) }

// Main runs notification-api alone, configured from the environment. With
// the argument "migrate" it applies the migrations and exits.
func Main(ctx context.Context, args []string) error {
	env := config.FromOS()
	if len(args) > 0 && args[0] == "migrate" {
		url := env.Required("DATABASE_URL")
		if err := env.Err(); err != nil {
			return fmt.Errorf("configuration: %w", err)
		}
		return Migrate(ctx, url)
	}
	common := config.ReadCommon(env, true, true)
	cfg := ReadConfig(env)
	if err := env.Err(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := logx.New(os.Stderr, common.LogLevel).With("service", Name)
	return app.Run(ctx, app.Options{Name: Name, Common: common, Log: log, NeedDB: true, Services: []app.Builder{New(cfg)}})
}

// Migrate applies the service's migrations to the database at url.
func Migrate(ctx context.Context, url string) error {
	db, err := postgres.Open(ctx, url, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	return postgres.Migrate(ctx, db, Name, migrations.FS)
}
