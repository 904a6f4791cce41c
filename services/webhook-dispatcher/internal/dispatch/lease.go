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
	RenewLease(ctx context.Context, holder uuid.UUID, ttl time.Duration, unsure []uuid.UUID) (store.Renewal, error)
	EndLease(ctx context.Context, holder uuid.UUID) error
}

// lease is this process's hold on the deliveries it claimed: one row in
// PostgreSQL renewed every third of its length by one statement, however
// many deliveries it holds. The renewal runs in this process only, so a
// process that dies (kill -9 included) stops renewing and its deliveries
// are taken over by another replica within twice the length and a renewal
// interval. Each renewal also takes over the deliveries of dead holders:
// those whose lease has been expired for a full length while this one was
// live (see store.RenewLease). A lease that lapsed without its deliveries
// being taken over keeps them: the answers this process holds are written,
// what it queued is sent once the lease is live again.
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
	// since is the start of the first renewal, or of the first one after
	// another replica took deliveries of this one over: deliveries claimed
	// before it may be another replica's.
	since time.Time
	// losses is the takeover count of the last renewal.
	losses int
	// unsure are the claim statements that failed: they may have claimed
	// rows that this process never got as jobs. The next renewal hands
	// those back; until then nothing more is claimed, so there are at most
	// as many as there are claimers.
	unsure []uuid.UUID
}

// claim returns the id to tag a claim statement with, or false while the
// rows of a failed one are not handed back yet.
func (l *lease) claim() (uuid.UUID, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return uuid.New(), len(l.unsure) == 0
}

// claimed hears how the claim statement tagged batch ended.
func (l *lease) claimed(batch uuid.UUID, err error) {
	if err == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unsure = append(l.unsure, batch)
}

func newLease(st leaseStore, ttl time.Duration, takenOver func(int), pg *health.Condition, log *slog.Logger) *lease {
	return &lease{st: st, holder: uuid.New(), ttl: ttl, takenOver: takenOver, pg: pg, log: log}
}

// Covers reports whether no delivery of this process has been taken over
// since a claim asked for at claimedAt, and the lease is live: only then is
// the claim surely this process's to send.
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
		// A renewal that takes longer than the lease is of no use: its
		// answer would extend nothing.
		rctx, cancel := context.WithTimeout(ctx, l.ttl)
		l.mu.Lock()
		unsure := l.unsure
		l.mu.Unlock()
		r, err := l.st.RenewLease(rctx, l.holder, l.ttl, unsure)
		cancel()
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			// If it runs out, other replicas take this one's deliveries over.
			l.pg.Fail(fmt.Errorf("renew the delivery lease: %w", err))
		default:
			l.pg.OK()
			l.renewed(start, r, len(unsure))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (l *lease) renewed(start time.Time, r store.Renewal, handedBack int) {
	l.mu.Lock()
	l.unsure = l.unsure[handedBack:] // failed claims added meanwhile wait for the next renewal
	first := l.since.IsZero()
	lost := r.Losses != l.losses
	if first || lost {
		l.since = start
	}
	l.losses = r.Losses
	l.until = start.Add(l.ttl)
	l.mu.Unlock()
	switch {
	case lost && !first:
		l.log.Warn("another replica took over deliveries of this one while its lease had run out; what this one claimed before is handed back", "holder", l.holder)
	case r.Lapsed && !first:
		l.log.Info("this replica's delivery lease had run out and is renewed; no other replica took its deliveries over, it keeps them", "holder", l.holder)
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
