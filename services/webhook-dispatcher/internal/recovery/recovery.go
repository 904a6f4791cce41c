// Package recovery runs recoveries: jobs that send a webhook, again, every
// event of its types that EVENTS stored in a window, as new deliveries
// carrying the original event ids. The job's state is a row of
// webhook_recoveries, held under a lease by one replica at a time and
// resumed from its last recorded stream position by another replica or
// after a restart. Its deliveries join the webhook's queue like retries, so
// the scheduler paces them with the same per-webhook isolation as live
// traffic; a recovery adds more only while fewer than Options.Backlog of
// its deliveries are pending.
package recovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/outbound"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/store"
)

// Options of the runner.
type Options struct {
	Lease         time.Duration // how long a recovery stays held without a renewal
	Batch         int           // events read per step
	Backlog       int           // most pending deliveries of one recovery
	MaxConcurrent int           // recoveries run at once by this replica
	Poll          time.Duration // how often the backlog is looked at while it is full
}

// recoveryStore is what the runner needs of the database.
type recoveryStore interface {
	GetWebhook(ctx context.Context, org string, id uuid.UUID) (store.Webhook, error)
	TakeRecovery(ctx context.Context, holder uuid.UUID, lease time.Duration) (store.Recovery, bool, error)
	AdvanceRecovery(ctx context.Context, holder uuid.UUID, r store.Recovery, lease time.Duration, read int, nextSeq uint64, rows []store.RecoveredDelivery) (int, bool, error)
	RecoveryBacklog(ctx context.Context, id uuid.UUID) (int, error)
	RenewRecovery(ctx context.Context, holder, id uuid.UUID, lease time.Duration) error
	FinishRecovery(ctx context.Context, holder, id uuid.UUID, reason string) error
	ReleaseRecovery(ctx context.Context, holder, id uuid.UUID) error
}

// Runner takes recoveries whose lease ran out and runs them.
type Runner struct {
	o      Options
	st     recoveryStore
	js     jetstream.JetStream
	log    *slog.Logger
	holder uuid.UUID
	wake   chan struct{}
}

// New builds a runner.
func New(o Options, st recoveryStore, js jetstream.JetStream, log *slog.Logger) *Runner {
	return &Runner{o: o, st: st, js: js, log: log, holder: uuid.New(), wake: make(chan struct{}, 1)}
}

// Wake makes the runner look for new recoveries now.
func (r *Runner) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Window is what EVENTS holds: the time before which events were dropped
// (by age or limits; zero when it never dropped any, so that any window is
// whole) and its last sequence.
func (r *Runner) Window(ctx context.Context) (time.Time, uint64, error) {
	s, err := r.js.Stream(ctx, natsx.StreamEvents)
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("stream %s: %w", natsx.StreamEvents, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("stream %s info: %w", natsx.StreamEvents, err)
	}
	st := info.State
	switch {
	case st.FirstSeq <= 1:
		return time.Time{}, st.LastSeq, nil
	case st.Msgs == 0:
		return time.Now(), st.LastSeq, nil // every event stored was dropped
	}
	return st.FirstTime, st.LastSeq, nil
}

// Run takes and runs recoveries until ctx ends; those still running are
// handed back for the next start or another replica.
func (r *Runner) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, r.o.MaxConcurrent)
	t := time.NewTicker(r.o.Lease / 2)
	defer t.Stop()
	for {
		for len(slots) < cap(slots) && ctx.Err() == nil {
			rec, ok, err := r.st.TakeRecovery(ctx, r.holder, r.o.Lease)
			if err != nil && ctx.Err() == nil {
				r.log.Warn("look for webhook recoveries to run", "err", err)
			}
			if !ok {
				break
			}
			slots <- struct{}{}
			wg.Go(func() {
				defer func() { <-slots }()
				r.run(ctx, rec)
			})
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.wake:
		}
	}
}

// failure is a reason that ends a recovery as FAILED.
type failure struct{ reason string }

func (f *failure) Error() string { return f.reason }

func (r *Runner) run(ctx context.Context, rec store.Recovery) {
	log := r.log.With("recovery_id", rec.ID, "webhook_id", rec.WebhookID)
	err := r.recover(ctx, rec)
	end := context.WithoutCancel(ctx)
	var f *failure
	switch {
	case errors.Is(err, store.ErrLeaseLost):
		log.Info("webhook recovery no longer held by this replica")
		return
	case ctx.Err() != nil:
		if err := r.st.ReleaseRecovery(end, r.holder, rec.ID); err != nil {
			log.Warn("hand back webhook recovery; it is taken again when its lease runs out", "err", err)
		}
		return
	case errors.As(err, &f):
		log.Warn("webhook recovery failed", "reason", f.reason)
		err = r.st.FinishRecovery(end, r.holder, rec.ID, f.reason)
	case err != nil:
		// Transient (PostgreSQL, JetStream): the lease runs out and the
		// recovery is taken again where it stopped.
		log.Warn("webhook recovery interrupted; it goes on when its lease runs out", "err", err)
		return
	default:
		log.Info("webhook recovery done")
		err = r.st.FinishRecovery(end, r.holder, rec.ID, "")
	}
	if err != nil {
		log.Warn("record the end of a webhook recovery", "err", err)
	}
}

// subjectsOf lists the EVENTS subjects of the domain event types that
// produce one of events.
func subjectsOf(events []string) []string {
	var out []string
	for _, t := range contract.EventTypes() {
		if route, _ := contract.RouteOf(t); route.Webhook != "" && slices.Contains(events, route.Webhook) {
			out = append(out, contract.EventsSubject(t))
		}
	}
	return out
}

// recover reads the window from where the recovery stopped and inserts its
// deliveries, one batch of events per step, each step recorded with the
// position it reached; then it waits for the last of its deliveries to
// finish, so that a RUNNING recovery means deliveries still on their way
// (and a second recovery of the webhook waits for the first to be over).
func (r *Runner) recover(ctx context.Context, rec store.Recovery) error {
	if err := r.read(ctx, rec); err != nil {
		return err
	}
	if _, err := r.waitForBacklog(ctx, rec, 1); err != nil {
		return err
	}
	hook, err := r.st.GetWebhook(ctx, rec.OrgID, rec.WebhookID)
	if err != nil {
		return err
	}
	if hook.Status != store.StatusActive {
		// Its pending deliveries were stopped with it (FAILED, retryable by hand).
		return &failure{reason: fmt.Sprintf("the webhook turned %s while its deliveries were being sent; see its FAILED deliveries", hook.Status)}
	}
	return nil
}

func (r *Runner) read(ctx context.Context, rec store.Recovery) error {
	hook, err := r.st.GetWebhook(ctx, rec.OrgID, rec.WebhookID)
	if errors.Is(err, store.ErrNotFound) {
		return store.ErrLeaseLost // deleted, with its recoveries
	}
	if err != nil {
		return err
	}
	if rec.NextSeq > rec.LastSeq {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: subjectsOf(hook.Events), DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &rec.Since}
	if rec.NextSeq > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartSequencePolicy, rec.NextSeq, nil
	}
	if len(cfg.FilterSubjects) == 0 {
		return nil
	}
	cons, err := r.js.OrderedConsumer(ctx, natsx.StreamEvents, cfg)
	if err != nil {
		return fmt.Errorf("read %s: %w", natsx.StreamEvents, err)
	}
	for {
		room, err := r.waitForBacklog(ctx, rec, r.o.Backlog)
		if err != nil {
			return err
		}
		batch, err := cons.Fetch(min(r.o.Batch, room), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return fmt.Errorf("read %s: %w", natsx.StreamEvents, err)
		}
		var rows []store.RecoveredDelivery
		read, next, done := 0, rec.NextSeq, false
		for m := range batch.Messages() {
			if done {
				continue // drained: the batch is not used further
			}
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("read %s: %w", natsx.StreamEvents, err)
			}
			if md.Sequence.Stream > rec.LastSeq || md.Timestamp.After(rec.Until) {
				done = true
				continue
			}
			read, next = read+1, md.Sequence.Stream+1
			if d, ok := deliveryOf(m.Data(), md.Timestamp, rec.OrgID, hook.Events); ok {
				rows = append(rows, d)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("read %s: %w", natsx.StreamEvents, err)
		}
		if read == 0 && !done {
			return nil // nothing more is stored in the window
		}
		if read > 0 {
			_, active, err := r.st.AdvanceRecovery(ctx, r.holder, rec, r.o.Lease, read, next, rows)
			if err != nil {
				return err
			}
			if !active {
				return &failure{reason: "the webhook is no longer ACTIVE; re-activate it and start a new recovery from where this one stopped"}
			}
			rec.NextSeq = next
		}
		if done {
			return nil
		}
	}
}

// deliveryOf is the delivery of one stored event to a webhook of org
// subscribed to events; false when the event is not for it (or cannot be
// decoded: the live consumer set it aside already).
func deliveryOf(data []byte, stored time.Time, org string, events []string) (store.RecoveredDelivery, bool) {
	ev, err := contract.DecodeReceived(data)
	if err != nil || ev.GetOrganizationId() != org {
		return store.RecoveredDelivery{}, false
	}
	route, _ := contract.RouteOf(ev.GetType())
	if route.Webhook == "" || !slices.Contains(events, route.Webhook) {
		return store.RecoveredDelivery{}, false
	}
	body, err := outbound.Body(ev, route.Webhook, stored)
	if err != nil {
		return store.RecoveredDelivery{}, false
	}
	return store.RecoveredDelivery{ID: uuid.Must(uuid.NewV7()), EventID: ev.GetId(), Event: route.Webhook, Body: body}, true
}

// waitForBacklog waits, renewing the lease, until fewer than limit of the
// recovery's deliveries are pending, and returns how many fewer.
func (r *Runner) waitForBacklog(ctx context.Context, rec store.Recovery, limit int) (int, error) {
	for {
		n, err := r.st.RecoveryBacklog(ctx, rec.ID)
		if err != nil {
			return 0, err
		}
		if n < limit {
			return limit - n, nil
		}
		if err := r.st.RenewRecovery(ctx, r.holder, rec.ID, r.o.Lease); err != nil {
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(r.o.Poll):
		}
	}
}
