package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/xpeditis/notify/pkg/health"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/store"
)

// leaseStore is what the lease needs of the database.
type leaseStore interface {
	RenewLease(ctx context.Context, holder uuid.UUID, ttl time.Duration) (store.Renewal, error)
	EndLease(ctx context.Context, holder uuid.UUID) error
}

// lease is this process's hold on the deliveries it claimed: one row in
// PostgreSQL renewed every third of its length by one statement, however
// many deliveries it holds. The renewal runs in this process only, so a
// process that dies (kill -9 included) stops renewing and its deliveries
// are taken over by another replica within the length and a renewal
// interval. Each renewal also takes over the deliveries of dead holders.
type lease struct {
	st        leaseStore
	holder    uuid.UUID
	ttl       time.Duration
	takenOver func(n int)
	pg        *health.Condition // where a failed renewal is reported
	log       *slog.Logger

	mu sync.Mutex
	// until is when the lease surely still runs, by this clock: the start
	// of the last successful renewal plus its length.
	until time.Time
	// since is the start of the renewal that began the current unbroken
	// lease: deliveries claimed before it may have been taken over.
	since time.Time
}

func newLease(st leaseStore, ttl time.Duration, takenOver func(int), pg *health.Condition, log *slog.Logger) *lease {
	return &lease{st: st, holder: uuid.New(), ttl: ttl, takenOver: takenOver, pg: pg, log: log}
}

// Covers reports whether the lease has been live without a break since a
// claim asked for at claimedAt, and still is: only then is the claim surely
// this process's to send.
func (l *lease) Covers(claimedAt time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.since.IsZero() && !claimedAt.Before(l.since) && time.Now().Before(l.until)
}

// Run renews the lease until ctx ends.
func (l *lease) Run(ctx context.Context) {
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		start := time.Now()
		r, err := l.st.RenewLease(ctx, l.holder, l.ttl)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			// If it runs out, other replicas take this one's deliveries over.
			l.pg.Fail(fmt.Errorf("renew the delivery lease: %w", err))
		default:
			l.pg.OK()
			l.renewed(start, r)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (l *lease) renewed(start time.Time, r store.Renewal) {
	l.mu.Lock()
	first := l.since.IsZero()
	if r.Lapsed || first {
		l.since = start
	}
	l.until = start.Add(l.ttl)
	l.mu.Unlock()
	if r.Lapsed && !first {
		l.log.Warn("this replica's delivery lease had run out; the deliveries it claimed before are handed back", "holder", l.holder)
	}
	if r.TakenOver > 0 {
		l.takenOver(r.TakenOver)
		l.log.Info("took over the deliveries of a replica whose lease ran out", "deliveries", r.TakenOver)
	}
}

// End gives the lease up, once nothing is sent under it any more: what it
// still holds (a hand-back that failed) is taken over at the next renewal
// of another replica.
func (l *lease) End(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := l.st.EndLease(ctx, l.holder); err != nil {
		l.log.Warn("end the delivery lease; it runs out by itself", "holder", l.holder, "err", err)
	}
}
