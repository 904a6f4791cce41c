package napibench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lib/pq"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/postgres"
	"github.com/xpeditis/notify/pkg/publisher"
)

// IngestOptions configure the ingest benchmark.
type IngestOptions struct {
	NATSURL     string
	DatabaseURL string
	Events      int     // events to publish
	Recipients  int     // recipients of each event (distinct users; 0 means 1)
	Users       int     // recipients are drawn at random from this many users
	Rate        float64 // events/s to publish at; 0 publishes as fast as MaxInFlight allows
	MaxInFlight int     // publishes awaiting their JetStream ack, at most
	// Consumer is the durable name of the ingest consumer on EVENTS; its ack
	// floor says when every event is done, since it acks after commit.
	Consumer string
	// ServicePID is the process id of the service, when it runs on this
	// machine, for its CPU time; 0 leaves it out.
	ServicePID int
	Timeout    time.Duration // how long the service may take to catch up
	Copy       bool          // also time one COPY of the same rows into a fresh copy of the table
	Progress   io.Writer     // a line a second while running; nil for none
}

// IngestResult holds the figures of one run. Times are measured on the
// benchmark's monotonic clock from the first publish.
type IngestResult struct {
	Run        string
	Events     int
	Recipients int
	Users      int
	TargetRate float64
	Published  time.Duration // until the last publish was acked by the stream
	Done       time.Duration // until the last event's notification was seen (every row committed before)
	Steady     float64       // events/s between the 10th and the 90th percentile of completion times
	Latency    Summary       // publish → the notification arriving on live.user.<id>
	Observed   int           // events whose notification was seen on live.user.>
	Duplicates int           // notifications seen more than once (redeliveries)
	Dropped    int           // slow-consumer events of the observer's connection
	Rows       int64         // rows of the run's events in the table afterwards
	PerSecond  []int         // events completed in each second of the run
	Retried    int           // publishes that failed asynchronously and were sent again
	Load       [2]string     // /proc/loadavg before and after
	Pressure   Pressure      // CPU contention from the first publish to the last commit
	CPU        CPUUse        // CPU time spent over the same interval
	Copy       *CopyResult
}

// Rate is the completed events per second over the whole run.
func (r IngestResult) Rate() float64 { return rate(r.Events, r.Done) }

// Ingest publishes opts.Events events to JetStream and measures how fast the
// running notification-api turns them into committed rows.
//
// What is timed: each event's publish (the call handing it to the client,
// taken just before) to the arrival of its notification on live.user.<id>,
// where the NOTIFY stream republishes every stored message. notification-api
// publishes a notification only after the insert of its batch has committed,
// so that arrival is an upper bound of publish-to-commit, and the exact
// moment a realtime client could see it. Completion is also checked on the
// consumer's ack floor (acks follow commits) and, at the end, by counting the
// rows in PostgreSQL.
func Ingest(ctx context.Context, o IngestOptions) (*IngestResult, error) {
	if o.Recipients == 0 {
		o.Recipients = 1
	}
	if o.Events < 1 || o.Users < 1 || o.MaxInFlight < 1 || o.Recipients < 1 {
		return nil, errors.New("bench ingest: events, recipients, users and in-flight must be positive")
	}
	if o.Recipients > o.Users || o.Recipients > contract.MaxRecipients {
		return nil, fmt.Errorf("bench ingest: %d recipients per event need as many users, and at most %d", o.Recipients, contract.MaxRecipients)
	}
	if o.DatabaseURL == "" {
		return nil, errors.New("bench ingest: the service's database is needed to count its rows: set -db or DATABASE_URL")
	}
	run := runID()
	res := &IngestResult{Run: run, Events: o.Events, Recipients: o.Recipients, Users: o.Users, TargetRate: o.Rate}
	res.Load[0] = LoadAverage()

	msgs, ids, err := ingestEvents(run, o.Events, o.Recipients, o.Users)
	if err != nil {
		return nil, err
	}

	db, err := postgres.Open(ctx, o.DatabaseURL, 2)
	if err != nil {
		return nil, err
	}
	defer db.Close()

	pubConn, err := nats.Connect(o.NATSURL, nats.Name("notifybench-ingest"))
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", o.NATSURL, err)
	}
	defer pubConn.Close()
	var dropped atomic.Int64
	obsConn, err := nats.Connect(o.NATSURL, nats.Name("notifybench-observer"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				dropped.Add(1)
			}
		}))
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", o.NATSURL, err)
	}
	defer obsConn.Close()

	var (
		maxSeq  atomic.Uint64
		failMu  sync.Mutex
		failed  []*nats.Msg
		tracker = newArrivals(run, o.Events, o.Recipients)
	)
	js, err := jetstream.New(pubConn,
		jetstream.WithPublishAsyncMaxPending(o.MaxInFlight),
		jetstream.WithPublishAsyncTimeout(30*time.Second),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, _ *nats.Msg, ack *jetstream.PubAck) {
			raise(&maxSeq, ack.Sequence)
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, _ error) {
			failMu.Lock()
			failed = append(failed, m)
			failMu.Unlock()
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	cons, err := waitIdle(ctx, js, o.Consumer, o.Timeout, o.Progress)
	if err != nil {
		return nil, err
	}
	stream, err := js.Stream(ctx, natsx.StreamEvents)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", natsx.StreamEvents, err)
	}
	settle(ctx, stream, o.Consumer, time.Minute, o.Progress)
	si, err := stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", natsx.StreamEvents, err)
	}
	firstSeq := si.State.LastSeq

	sub, err := obsConn.Subscribe("live.user.>", tracker.observe)
	if err != nil {
		return nil, fmt.Errorf("subscribe live.user.>: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	// The observer must never be the bottleneck that drops messages: its
	// backlog is bounded by the run's own notifications anyway.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, err
	}
	if err := obsConn.Flush(); err != nil {
		return nil, fmt.Errorf("subscribe live.user.>: %w", err)
	}

	clock := tracker.clock
	pressure := StartPressure()
	meter := startCPU(ctx, db, o.ServicePID)
	stopProgress := startProgress(o.Progress, clock, func() string {
		return fmt.Sprintf("published %d, acked by the stream up to seq %d, notifications seen %d", tracker.published.Load(), maxSeq.Load(), tracker.count())
	})
	defer stopProgress()

	if err := publishAll(ctx, js, msgs, o.Rate, tracker); err != nil {
		return nil, err
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	failMu.Lock()
	retry := failed
	failMu.Unlock()
	res.Retried = len(retry)
	for _, m := range retry { // same Nats-Msg-Id: the stream drops any that did land
		ack, err := js.PublishMsg(ctx, m)
		if err != nil {
			return nil, fmt.Errorf("publish (retry): %w", err)
		}
		raise(&maxSeq, ack.Sequence)
	}
	res.Published = clock.since()

	ackedAt, err := waitAcked(ctx, cons, maxSeq.Load(), o.Timeout, clock)
	if err != nil {
		return nil, fmt.Errorf("%w (first seq %d, %d notifications seen)", err, firstSeq, tracker.count())
	}
	// A notification is published before its event is acked, so they are
	// all on their way; give the observer a moment to read its backlog.
	grace := time.Now().Add(5 * time.Second)
	for tracker.count() < o.Events && time.Now().Before(grace) {
		time.Sleep(10 * time.Millisecond)
	}
	stopProgress()
	res.Pressure = pressure.Stop()
	res.CPU = meter.stop(ctx)
	_ = sub.Unsubscribe()

	tracker.result(res, ackedAt)
	res.Dropped = int(dropped.Load())
	if err := db.GetContext(ctx, &res.Rows, `SELECT count(*) FROM notifications WHERE event_id = ANY($1)`, pq.Array(ids)); err != nil {
		return nil, fmt.Errorf("count rows: %w", err)
	}
	if o.Copy {
		c, err := copyCeiling(ctx, db, run, ids)
		if err != nil {
			return nil, err
		}
		res.Copy = c
	}
	res.Load[1] = LoadAverage()
	return res, nil
}

// raise sets v to at least n.
func raise(v *atomic.Uint64, n uint64) {
	for cur := v.Load(); n > cur && !v.CompareAndSwap(cur, n); cur = v.Load() {
	}
}

// ingestEvents builds the run's messages up front so that encoding does not
// compete with the service for CPU while it is measured.
func ingestEvents(run string, n, recipients, users int) ([]*nats.Msg, []string, error) {
	var types []string
	for _, t := range contract.EventTypes() {
		if r, _ := contract.RouteOf(t); r.InApp != "" {
			types = append(types, t)
		}
	}
	rng := rand.New(rand.NewPCG(uint64(n), uint64(users))) // the same recipients every run
	occurred := timestamppb.Now()
	msgs := make([]*nats.Msg, n)
	ids := make([]string, n)
	for i := range n {
		data, err := structpb.NewStruct(map[string]any{"bookingId": "BK-" + strconv.Itoa(i), "benchRun": run})
		if err != nil {
			return nil, nil, err
		}
		ids[i] = eventID(run, i)
		first := rng.IntN(users)
		to := make([]string, recipients) // consecutive users from a random one: distinct
		for k := range to {
			to[k] = fmt.Sprintf("bench-user-%05d", (first+k)%users)
		}
		ev := &contract.Event{
			Id:             ids[i],
			Type:           types[i%len(types)],
			OccurredAt:     occurred,
			OrganizationId: "bench-org-" + strconv.Itoa(i%100),
			Recipients:     to,
			Data:           data,
		}
		if msgs[i], err = publisher.Message(ev); err != nil {
			return nil, nil, err
		}
	}
	return msgs, ids, nil
}

func eventID(run string, i int) string { return "bench-" + run + "-" + strconv.Itoa(i) }

// publishAll publishes asynchronously, at most MaxInFlight unacknowledged,
// paced to rate when it is set.
func publishAll(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg, perSecond float64, t *arrivals) error {
	for i, m := range msgs {
		if perSecond > 0 {
			due := time.Duration(float64(i) / perSecond * float64(time.Second))
			if wait := due - t.clock.since(); wait > time.Millisecond {
				time.Sleep(wait)
			}
		}
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			t.sent(i)
			_, err := js.PublishMsgAsync(m)
			if err == nil {
				break
			}
			if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				return fmt.Errorf("publish: %w", err)
			}
			// The stream is behind: wait for a slot; the event's clock restarts.
		}
	}
	return nil
}

// waitIdle returns the ingest consumer once it has no backlog, so that the
// run measures its own events only.
func waitIdle(ctx context.Context, js jetstream.JetStream, durable string, timeout time.Duration, progress io.Writer) (jetstream.Consumer, error) {
	cons, err := js.Consumer(ctx, natsx.StreamEvents, durable)
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w (is notification-api running on this NATS server?)", durable, natsx.StreamEvents, err)
	}
	deadline := time.Now().Add(timeout)
	for said := false; ; {
		info, err := cons.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("consumer %s: %w", durable, err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 {
			return cons, nil
		}
		if !said && progress != nil {
			fmt.Fprintf(progress, "waiting for consumer %s to finish a backlog of %d events\n", durable, info.NumPending+uint64(info.NumAckPending))
			said = true
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("consumer %s still has %d pending and %d unacked events after %s", durable, info.NumPending, info.NumAckPending, timeout)
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// settle waits, up to limit, for the stream's other consumers (in notifyd,
// the webhook dispatcher) to finish their backlog, so that a run does not
// share the CPU with the tail of the previous one. It only warns: a durable
// whose client is gone never drains.
func settle(ctx context.Context, stream jetstream.Stream, own string, limit time.Duration, progress io.Writer) {
	deadline := time.Now().Add(limit)
	for {
		var busy []string
		list := stream.ListConsumers(ctx)
		for ci := range list.Info() {
			if ci.Name != own && (ci.NumPending > 0 || ci.NumAckPending > 0) {
				busy = append(busy, fmt.Sprintf("%s (%d events)", ci.Name, ci.NumPending+uint64(ci.NumAckPending)))
			}
		}
		if list.Err() != nil || len(busy) == 0 {
			return
		}
		if time.Now().After(deadline) {
			logf(progress, "note: other consumers of %s still busy after %s, running anyway: %s", natsx.StreamEvents, limit, strings.Join(busy, ", "))
			return
		}
		if sleepCtx(ctx, 200*time.Millisecond) != nil {
			return
		}
	}
}

// waitAcked polls the consumer until its ack floor reaches seq, and returns
// when that was seen.
func waitAcked(ctx context.Context, cons jetstream.Consumer, seq uint64, timeout time.Duration, clock monoClock) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("consumer info: %w", err)
		}
		if info.AckFloor.Stream >= seq {
			return clock.since(), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("events not all acked after %s: ack floor %d, want %d", timeout, info.AckFloor.Stream, seq)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

// Report writes the figures for people.
func (r *IngestResult) Report(w io.Writer) {
	target := "as fast as the stream acks them"
	if r.TargetRate > 0 {
		target = fmt.Sprintf("paced at %.0f events/s", r.TargetRate)
	}
	fmt.Fprintf(w, "ingest run %s: %d events, %d recipients each, %d users, published %s\n", r.Run, r.Events, r.Recipients, r.Users, target)
	fmt.Fprintf(w, "  load average before/after: %s / %s; %s\n", r.Load[0], r.Load[1], r.Pressure)
	fmt.Fprintf(w, "  publish:   %d events in %s = %.0f events/s (%d async failures re-sent)\n", r.Events, r.Published.Round(time.Millisecond), rate(r.Events, r.Published), r.Retried)
	fmt.Fprintf(w, "  committed: %d events in %s = %.0f events/s overall, %.0f events/s steady (10th-90th percentile of completions)\n",
		r.Events, r.Done.Round(time.Millisecond), r.Rate(), r.Steady)
	fmt.Fprintf(w, "  publish -> notification on live.user.<id> (after commit): %s\n", r.Latency)
	fmt.Fprintf(w, "  %s\n", r.CPU.perUnit(r.Events, "event", runtime.NumCPU()))
	fmt.Fprintf(w, "  observed %d/%d events' notifications, %d duplicates, %d slow-consumer drops; rows in the table: %d\n", r.Observed, r.Events, r.Duplicates, r.Dropped, r.Rows)
	fmt.Fprintf(w, "  completions per second: %v\n", r.PerSecond)
	if r.Copy != nil {
		fmt.Fprintf(w, "  ceiling: one COPY of the same %d rows into an empty copy of the table: %s = %.0f rows/s; ingest reaches %.0f%% of it (overall), %.0f%% (steady)\n",
			r.Copy.Rows, r.Copy.Duration.Round(time.Millisecond), r.Copy.Rate(), 100*r.Rate()/r.Copy.Rate(), 100*r.Steady/r.Copy.Rate())
		if r.Copy.PostgresCPU > 0 {
			fmt.Fprintf(w, "  COPY cost the PostgreSQL backend %.0f µs per row (ingest's backends: %.0f µs per event)\n",
				float64(r.Copy.PostgresCPU.Microseconds())/float64(r.Copy.Rows), float64(r.CPU.Postgres.Microseconds())/float64(r.Events))
		}
	}
}

// Check says what is wrong with a run: a benchmark whose rows are missing
// measured nothing.
func (r *IngestResult) Check() error {
	var errs []error
	if r.Rows != int64(r.Events*r.Recipients) {
		errs = append(errs, fmt.Errorf("%d rows for %d events of %d recipients", r.Rows, r.Events, r.Recipients))
	}
	if r.Observed != r.Events {
		errs = append(errs, fmt.Errorf("saw %d of %d notifications on live.user.> (%d slow-consumer drops)", r.Observed, r.Events, r.Dropped))
	}
	if r.Copy != nil && r.Copy.Rows != r.Events*r.Recipients {
		errs = append(errs, fmt.Errorf("COPY wrote %d rows for %d events of %d recipients", r.Copy.Rows, r.Events, r.Recipients))
	}
	return errors.Join(errs...)
}

// runID names a run in event ids and table names: lowercase letters and
// digits only.
func runID() string {
	const four = 36 * 36 * 36 * 36 // four base-36 digits of randomness after the time
	return strconv.FormatInt(time.Now().Unix(), 36) + strconv.FormatInt(int64(four+rand.IntN(four)), 36)[1:]
}
