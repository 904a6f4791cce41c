package napibench_test

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/xpeditis/notify/pkg/app"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/postgres"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/scripts/bench/napibench"
	"github.com/xpeditis/notify/services/notification-api/notificationapi"
)

// The load generators of `notifybench` run here at a small scale against
// the real service, so that a change to the service or to them that breaks
// the measurement (lost rows, unseen notifications, failing pages) fails the
// suite instead of a benchmark run weeks later.

// service is notification-api run in this process as its binary runs it,
// on a random port, with a connection to its database for the checks.
type service struct {
	base string
	db   *sqlx.DB
}

func startService(t testing.TB, natsURL, dbURL string) service {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env := config.FromMap(map[string]string{"DATABASE_URL": dbURL, "NATS_URL": natsURL, "JWT_SECRET": testkit.JWTSecret, "INGEST_MAX_WAIT": "5ms"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, app.Options{
			Name: "bench-test", Common: config.ReadCommon(env, true, true), Log: testkit.Logger(), NeedDB: true,
			Services: []app.Builder{notificationapi.New(notificationapi.ReadConfig(env))}, Listener: ln, ShutdownGrace: 5 * time.Second,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("service stopped with: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()
	testkit.WaitForOK(t, 10*time.Second, base+"/readyz")
	db, err := postgres.Open(context.Background(), dbURL, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return service{base: base, db: db}
}

func TestIngestBenchmarkSeesEveryEventCommitted(t *testing.T) {
	n := testkit.StartNATS(t)
	dbURL := testkit.Database(t)
	h := startService(t, n.URL, dbURL)
	const events = 2000
	res, err := napibench.Ingest(context.Background(), napibench.IngestOptions{
		NATSURL: n.URL, DatabaseURL: dbURL, Events: events, Users: 50, MaxInFlight: 128,
		Consumer: notificationapi.Name, ServicePID: os.Getpid(), Timeout: time.Minute, Copy: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Check(); err != nil {
		t.Fatal(err)
	}
	if res.Rows != events || res.Observed != events || res.Latency.N != events || res.Copy.Rows != events {
		t.Fatalf("rows %d, observed %d, latencies %d, copied %d; want %d each", res.Rows, res.Observed, res.Latency.N, res.Copy.Rows, events)
	}
	if res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P99 || res.Done < res.Latency.Max || res.Copy.Duration <= 0 {
		t.Fatalf("implausible timings: latency %s, done %s, copy %s", res.Latency, res.Done, res.Copy.Duration)
	}
	if !res.CPU.ServiceKnown || res.CPU.Service <= 0 {
		t.Fatalf("service CPU not measured: %+v", res.CPU)
	}
	sum := 0
	for _, c := range res.PerSecond {
		sum += c
	}
	if sum != events {
		t.Fatalf("completions per second add up to %d, want %d", sum, events)
	}
	var copies int
	if err := h.db.Get(&copies, `SELECT count(*) FROM pg_tables WHERE tablename LIKE 'bench_copy_%'`); err != nil || copies != 0 {
		t.Fatalf("%d COPY tables left behind (%v)", copies, err)
	}
}

func TestListBenchmarkSeedsOnceAndReadsFullPages(t *testing.T) {
	dbURL := testkit.Database(t)
	h := startService(t, testkit.StartNATS(t).URL, dbURL)
	o := napibench.ListOptions{
		BaseURL: h.base, DatabaseURL: dbURL,
		Seed: napibench.Seed{Users: 20, Rows: 2000, History: 24 * time.Hour, Streams: 2},
		Rate: 200, Duration: time.Second, Limit: 10, DeepPage: 5, DeepUsers: 5,
		Secret: testkit.JWTSecret, ServicePID: os.Getpid(),
	}
	res, err := napibench.List(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Check(); err != nil {
		t.Fatal(err)
	}
	if res.SeedReused {
		t.Fatal("a fresh database reported a reused seed")
	}
	if len(res.Loads) != 2 || res.Loads[0].Sent != 200 || res.Loads[1].Sent != 200 {
		t.Fatalf("loads %+v, want two of 200 requests", res.Loads)
	}
	for _, p := range res.Plans {
		if !strings.Contains(p.Text, "Execution Time") {
			t.Fatalf("plan of %s: %q", p.Name, p.Text)
		}
	}
	var rows int
	if err := h.db.Get(&rows, `SELECT count(*) FROM notifications WHERE user_id LIKE 'seed-user-%'`); err != nil || rows != 2000 {
		t.Fatalf("%d seeded rows (%v), want 2000", rows, err)
	}

	o.Duration = 200 * time.Millisecond
	again, err := napibench.List(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !again.SeedReused {
		t.Fatal("the second run loaded the seed again")
	}

	o.Secret = "not-the-service-secret-not-the-service-secret"
	if _, err := napibench.List(context.Background(), o); err == nil || !strings.Contains(err.Error(), "status 401") {
		t.Fatalf("a wrong secret gave %v, want a 401 named at once", err)
	}
}
