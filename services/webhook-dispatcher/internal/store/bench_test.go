package store

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
)

// BenchmarkDeliveryWrites is what PostgreSQL does for each delivery of a
// healthy webhook, in batches of STORE_BENCH_BATCH (default 8, about what
// the dispatcher's 5 ms window gathers at 800 events/s on an idle machine):
// the insert that claims the deliveries and starts their attempt, then the
// transaction that records the results. Run it against a PostgreSQL of its
// own (TEST_DATABASE_URL) and count that cluster's CPU time around it.
func BenchmarkDeliveryWrites(b *testing.B) {
	batch := 8
	if v, err := strconv.Atoi(os.Getenv("STORE_BENCH_BATCH")); err == nil && v > 0 {
		batch = v
	}
	s := newStore(b)
	ctx := b.Context()
	hooks := make([]Webhook, 100)
	for i := range hooks {
		hooks[i] = activeWebhook(b, s, fmt.Sprintf("org-%03d", i))
	}
	holder := liveHolder(b, s, time.Hour)
	n := 0
	b.ResetTimer()
	for range b.N {
		rows := make([]NewDelivery, batch)
		for i := range rows {
			rows[i] = newDelivery(hooks[n%len(hooks)], "ev-"+strconv.Itoa(n))
			n++
		}
		jobs, err := s.InsertDeliveries(ctx, holder, uuid.New(), rows)
		if err != nil || len(jobs) != batch {
			b.Fatalf("insert: %d jobs, %v", len(jobs), err)
		}
		results := make([]Result, len(jobs))
		for i, j := range jobs {
			results[i] = Result{Job: j, Status: DeliverySucceeded,
				Attempt: Attempt{Number: j.Attempt, At: time.Now().UTC(), DurationMs: 1, Outcome: OutcomeSuccess, StatusCode: 204}}
		}
		if _, err := s.Complete(ctx, results, 3); err != nil {
			b.Fatal(err)
		}
	}
}
