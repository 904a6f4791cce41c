package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xpeditis/notify/pkg/cmd/cli"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/publisher"
	"github.com/xpeditis/notify/scripts/bench/napibench"
	"github.com/xpeditis/notify/scripts/bench/proccpu"
	"github.com/xpeditis/notify/services/notification-api/notificationapi"
)

// prefix keeps the benchmark's subjects and streams apart from the
// services' on a shared server.
const prefix = "floors."

// natsRuns are the runs of `floors nats`, in order.
var natsRuns = []string{"core", "publish", "republish", "consume", "chain"}

type natsOptions struct {
	url      string
	pid      int
	n        int
	inFlight int
	users    int
	runs     []string
	timeout  time.Duration
}

// runNATS is `floors nats`.
func runNATS(ctx context.Context, args []string, io cli.Stdio) error {
	c := cli.New("floors", "nats", `Measures nats-server's CPU time per message for the NATS operations of one
ingest event, each on streams it creates and deletes, configured as the
services declare EVENTS and NOTIFY (pkg/natsx) under the prefix "floors.":
  core       core publish to one subscriber (no JetStream)
  publish    JetStream async publish with Nats-Msg-Id to the EVENTS configuration
  republish  the same to the NOTIFY configuration, whose RePublish a subscriber
             on live.user.> receives
  consume    a durable pull consumer configured as notification-api's ingest
             (pkg/natsx.Consumer, batches, AckExplicit, one Ack per message)
             reading what "publish" stored
  chain      the whole path of one event: a producer publishes to EVENTS, a
             consumer as above publishes one notification per event to NOTIFY,
             awaits its PubAck, acks the event; a subscriber receives the
             republished message
The CPU of this process (producer, consumer and subscriber at once) is shown too.`,
		`floors nats -nats nats://127.0.0.1:4222 -pid "$(pgrep -n nats-server)" -n 100000`)
	fs := c.FS
	var o natsOptions
	c.NATSFlag(&o.url)
	fs.IntVar(&o.pid, "pid", 0, "process id of the nats-server, to read its CPU time (required; it must run on this machine)")
	fs.IntVar(&o.n, "n", 100_000, "messages (events) of each run")
	fs.IntVar(&o.inFlight, "inflight", 256, "unacknowledged JetStream publishes of the producer at most")
	fs.IntVar(&o.users, "users", 10_000, "users the notifications are spread over (a NOTIFY subject each)")
	runs := fs.String("runs", strings.Join(natsRuns, ","), "runs to make, comma-separated")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "longest one run may take")
	if err := c.Parse(args, io); err != nil {
		return err
	}
	if _, ok := proccpu.Of(o.pid); !ok {
		return cli.Usagef("nats: -pid %d: no such process on this machine (the nats-server's pid is required)", o.pid)
	}
	if o.n < 1 || o.inFlight < 1 || o.users < 1 {
		return cli.Usagef("nats: -n, -inflight and -users must be positive")
	}
	for _, r := range strings.Split(*runs, ",") {
		if !slices.Contains(natsRuns, r) {
			return cli.Usagef("nats: -runs: unknown run %q (%s)", r, strings.Join(natsRuns, ", "))
		}
		o.runs = append(o.runs, r)
	}
	b, err := newNATSBench(o)
	if err != nil {
		return err
	}
	// Whatever happens, no stream of the benchmark is left behind.
	defer b.deleteStream(ctx, b.events.Name)
	defer b.deleteStream(ctx, b.notify.Name)
	load := napibench.LoadAverage()
	pressure := napibench.StartPressure()
	t := &table{
		title: fmt.Sprintf("floors nats: %d messages per run; event %d bytes, notification %d bytes; %d in flight; nats-server pid %d; CPU per message (µs) of nats-server and of this process",
			o.n, len(b.event.Data), len(b.note), o.inFlight, o.pid),
		parties: []string{"nats-server", "floors"},
	}
	done := map[string]measure{}
	for _, r := range o.runs {
		logf(io.Err, "nats: %s", r)
		m, err := b.run(ctx, r)
		if err != nil {
			return err
		}
		done[r] = m
		t.add(m)
	}
	if p, ok1 := done["publish"]; ok1 {
		if r, ok2 := done["republish"]; ok2 {
			if c, ok3 := done["consume"]; ok3 {
				t.add(sum("sum of publish + republish + consume", 1, p, r, c))
			}
		}
	}
	t.print(io.Out)
	fmt.Fprintf(io.Out, "  load average before/after: %s / %s; %s\n", load, napibench.LoadAverage(), pressure.Stop())
	return nil
}

// natsBench holds what the runs share.
type natsBench struct {
	o              natsOptions
	events, notify jetstream.StreamConfig // as pkg/natsx declares EVENTS and NOTIFY, under the prefix
	ingest         notificationapi.Config // notification-api's defaults: batch, wait, workers, ack wait
	event          *nats.Msg              // a real event (pkg/publisher): the producer's template
	note           []byte                 // a notification's body as ingest publishes it on NOTIFY
	users          []string               // the NOTIFY subject of each user
	live           string                 // where NOTIFY republishes, for a subscriber
}

func newNATSBench(o natsOptions) (*natsBench, error) {
	b := &natsBench{o: o, live: prefix + strings.TrimSuffix(contract.LiveSubject("x"), "x") + ">"} // floors.live.user.>
	var err error
	if b.events, b.notify, err = floorStreams(config.ReadCommon(config.FromMap(nil), false, false).Streams); err != nil {
		return nil, err
	}
	b.ingest = notificationapi.ReadConfig(config.FromMap(nil))
	if b.event, b.note, err = samples(); err != nil {
		return nil, err
	}
	b.event.Subject = prefix + b.event.Subject
	b.users = make([]string, o.users)
	for i := range b.users {
		b.users[i] = prefix + contract.NotifySubject(fmt.Sprintf("bench-user-%05d", i))
	}
	return b, nil
}

// floorStreams returns the services' EVENTS and NOTIFY configurations for
// the given retention (pkg/natsx), renamed FLOORS_EVENTS and FLOORS_NOTIFY
// and with every subject, the RePublish's too, under the prefix; every
// other setting is the services'.
func floorStreams(s config.Streams) (events, notify jetstream.StreamConfig, err error) {
	for _, c := range natsx.StreamConfigs(s) {
		switch c.Name {
		case natsx.StreamEvents:
			events = c
		case natsx.StreamNotify:
			notify = c
		}
	}
	if events.Name == "" || notify.Name == "" || notify.RePublish == nil {
		return events, notify, errors.New("natsx.StreamConfigs has no EVENTS, or no NOTIFY with a RePublish")
	}
	for _, c := range []*jetstream.StreamConfig{&events, &notify} {
		c.Name = "FLOORS_" + c.Name
		c.Description = "floors benchmark: " + c.Description
		subjects := make([]string, len(c.Subjects))
		for i, s := range c.Subjects {
			subjects[i] = prefix + s
		}
		c.Subjects = subjects
	}
	rp := *notify.RePublish
	rp.Source, rp.Destination = prefix+rp.Source, prefix+rp.Destination
	notify.RePublish = &rp
	return events, notify, nil
}

// samples are a real event's message, as a producer publishes it with
// pkg/publisher, and the body of its notification on NOTIFY, as ingest
// encodes it (a contract.UserMessage holding the notification).
func samples() (*nats.Msg, []byte, error) {
	var typ string
	var route contract.Route
	for _, t := range contract.EventTypes() {
		if r, _ := contract.RouteOf(t); r.InApp != "" {
			typ, route = t, r
			break
		}
	}
	data, err := structpb.NewStruct(map[string]any{"bookingId": "BK-000001", "benchRun": "floors"})
	if err != nil {
		return nil, nil, err
	}
	id := "floors-" + uuid.NewString()
	msg, err := publisher.Message(&contract.Event{
		Id: id, Type: typ, OccurredAt: timestamppb.Now(), OrganizationId: "bench-org-1",
		Recipients: []string{"bench-user-00001"}, Data: data,
	})
	if err != nil {
		return nil, nil, err
	}
	note, err := json.Marshal(struct {
		Event string                `json:"event"`
		Data  contract.Notification `json:"data"`
	}{contract.UserEventNotification, contract.Notification{
		ID: uuid.Must(uuid.NewV7()).String(), Type: route.InApp, Priority: route.Priority, Title: route.Title, Message: route.Message,
		Data: json.RawMessage(`{"bookingId":"BK-000001","benchRun":"floors"}`), EventID: id, CreatedAt: time.Now().UTC(),
	}})
	return msg, note, err
}

func (b *natsBench) run(ctx context.Context, name string) (measure, error) {
	ctx, cancel := context.WithTimeout(ctx, b.o.timeout)
	defer cancel()
	switch name {
	case "core":
		return b.core(ctx)
	case "publish":
		// Kept for "consume", which reads what it stored.
		return b.publish(ctx, "publish: JetStream, EVENTS settings", b.events, false)
	case "republish":
		defer b.deleteStream(ctx, b.notify.Name)
		return b.publish(ctx, "republish: JetStream, NOTIFY settings + RePublish to a subscriber", b.notify, true)
	case "consume":
		defer b.deleteStream(ctx, b.events.Name)
		return b.consume(ctx)
	default:
		return b.chain(ctx)
	}
}

// connect opens a connection of its own for one party of a run.
func (b *natsBench) connect(name string) (*nats.Conn, error) {
	nc, err := nats.Connect(b.o.url, nats.Name("floors-"+name))
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", natsx.RedactURL(b.o.url), err)
	}
	return nc, nil
}

// measured runs work while the CPU of nats-server and of this process is
// measured, from its start to its end plus a short settle: what the server
// finishes just after the last reply (writing out the last block) counts
// too, and it spends next to nothing idle.
func (b *natsBench) measured(ctx context.Context, name string, work func(context.Context) error) (measure, error) {
	m := proccpu.Start(ctx, nil, b.o.pid)
	start := time.Now()
	if err := work(ctx); err != nil {
		return measure{}, fmt.Errorf("%s: %w", name, err)
	}
	elapsed := time.Since(start)
	time.Sleep(settle)
	u := m.Stop(ctx)
	if !u.PIDKnown[0] {
		return measure{}, fmt.Errorf("%s: nats-server (pid %d) is gone", name, b.o.pid)
	}
	return measure{name: name, ops: b.o.n, elapsed: elapsed, cpu: []time.Duration{u.PIDs[0], u.Self}, known: []bool{true, true}, sys: u.PIDSys[0]}, nil
}

const settle = 50 * time.Millisecond

// counter counts messages to a target and says when it is reached; with
// window set, each message counted frees a place in it.
type counter struct {
	n, target atomic.Int64
	done      chan struct{}
	window    chan struct{}
}

func newCounter(target int) *counter {
	c := &counter{done: make(chan struct{})}
	c.target.Store(int64(target))
	return c
}

func (c *counter) add(k int) {
	if c.window != nil {
		for range k {
			<-c.window
		}
	}
	if n := c.n.Add(int64(k)); n-int64(k) < c.target.Load() && n >= c.target.Load() {
		close(c.done)
	}
}

// wait blocks until the target is reached or ctx ends.
func (c *counter) wait(ctx context.Context, what string) error {
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %d of %d after the run's timeout", what, c.n.Load(), c.target.Load())
	}
}

// subscribe counts the messages of subject on a connection of its own;
// the subscription buffers without limit, so that it never drops one.
func (b *natsBench) subscribe(subject string, c *counter) (*nats.Conn, error) {
	nc, err := b.connect("subscriber")
	if err != nil {
		return nil, err
	}
	sub, err := nc.Subscribe(subject, func(*nats.Msg) { c.add(1) })
	if err == nil {
		err = sub.SetPendingLimits(-1, -1)
	}
	if err == nil {
		err = nc.Flush()
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("subscribe %s: %w", subject, err)
	}
	return nc, nil
}

// coreWindow bounds how far the core publisher runs ahead of its
// subscriber, well below what the server buffers for a client (64 MB),
// so that no message is dropped.
const coreWindow = 10_000

// core: publishes n notification bodies on one subject to one subscriber.
func (b *natsBench) core(ctx context.Context) (measure, error) {
	subject := prefix + "core"
	got := newCounter(b.o.n)
	got.window = make(chan struct{}, coreWindow)
	sub, err := b.subscribe(subject, got)
	if err != nil {
		return measure{}, err
	}
	defer sub.Close()
	pub, err := b.connect("publisher")
	if err != nil {
		return measure{}, err
	}
	defer pub.Close()
	return b.measured(ctx, "core: publish → 1 subscriber", func(ctx context.Context) error {
		for range b.o.n {
			select { // a place in the window, freed by the subscriber
			case got.window <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			if err := pub.Publish(subject, b.note); err != nil {
				return err
			}
		}
		if err := pub.Flush(); err != nil {
			return err
		}
		return got.wait(ctx, "received")
	})
}

// createStream creates the stream afresh (a leftover of an interrupted run
// is deleted first).
func (b *natsBench) createStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) error {
	if err := js.DeleteStream(ctx, cfg.Name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("delete stream %s: %w", cfg.Name, err)
	}
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		return fmt.Errorf("create stream %s: %w", cfg.Name, err)
	}
	return nil
}

// deleteStream removes a stream of the benchmark, whatever the run's
// outcome.
func (b *natsBench) deleteStream(ctx context.Context, name string) {
	nc, err := b.connect("admin")
	if err != nil {
		return
	}
	defer nc.Close()
	if js, err := jetstream.New(nc); err == nil {
		_ = js.DeleteStream(context.WithoutCancel(ctx), name)
	}
}

// eventMsg is the producer's i-th event: the sample event with an id of its own.
func (b *natsBench) eventMsg(i int) *nats.Msg {
	m := nats.NewMsg(b.event.Subject)
	m.Data = b.event.Data
	m.Header.Set(nats.MsgIdHdr, "e-"+strconv.Itoa(i))
	return m
}

// noteMsg is the notification of the i-th event, on its user's NOTIFY
// subject, de-duplicated by its id as ingest's are.
func (b *natsBench) noteMsg(i int) *nats.Msg {
	m := nats.NewMsg(b.users[i%len(b.users)])
	m.Data = b.note
	m.Header.Set(nats.MsgIdHdr, "n-"+strconv.Itoa(i))
	return m
}

// producer is a JetStream context of its own with at most inFlight
// unacknowledged async publishes.
func (b *natsBench) producer() (*nats.Conn, jetstream.JetStream, *atomic.Int64, error) {
	nc, err := b.connect("producer")
	if err != nil {
		return nil, nil, nil, err
	}
	failed := new(atomic.Int64)
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(b.o.inFlight),
		jetstream.WithPublishAsyncTimeout(30*time.Second),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { failed.Add(1) }))
	if err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	return nc, js, failed, nil
}

// publishAll publishes msg(0..n-1) asynchronously, waiting for a free slot
// when inFlight are unacknowledged, then for every ack.
func publishAll(ctx context.Context, js jetstream.JetStream, failed *atomic.Int64, n int, msg func(int) *nats.Msg) error {
	for i := range n {
		m := msg(i)
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			_, err := js.PublishMsgAsync(m)
			if err == nil {
				break
			}
			if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				return fmt.Errorf("publish: %w", err)
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return fmt.Errorf("publish: acks: %w", ctx.Err())
	}
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("publish: %d of %d publishes failed", f, n)
	}
	return nil
}

// checkStored fails unless the stream holds exactly n messages: none lost,
// none de-duplicated away.
func checkStored(ctx context.Context, js jetstream.JetStream, stream string, n int) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return err
	}
	if info.State.Msgs != uint64(n) {
		return fmt.Errorf("stream %s holds %d messages, not %d", stream, info.State.Msgs, n)
	}
	return nil
}

// publish: the producer publishes n messages to a fresh stream with cfg;
// with live, a subscriber receives the republished copies. The stream is
// left for the caller to delete.
func (b *natsBench) publish(ctx context.Context, name string, cfg jetstream.StreamConfig, live bool) (measure, error) {
	nc, js, failed, err := b.producer()
	if err != nil {
		return measure{}, err
	}
	defer nc.Close()
	if err := b.createStream(ctx, js, cfg); err != nil {
		return measure{}, err
	}
	msg, got := b.eventMsg, (*counter)(nil)
	if live {
		msg, got = b.noteMsg, newCounter(b.o.n)
		sub, err := b.subscribe(b.live, got)
		if err != nil {
			return measure{}, err
		}
		defer sub.Close()
	}
	m, err := b.measured(ctx, name, func(ctx context.Context) error {
		if err := publishAll(ctx, js, failed, b.o.n, msg); err != nil {
			return err
		}
		if live {
			return got.wait(ctx, "republished messages received")
		}
		return nil
	})
	if err != nil {
		return m, err
	}
	return m, checkStored(ctx, js, cfg.Name, b.o.n)
}

// consumer is a durable pull consumer set up as notification-api's ingest
// (services/notification-api/internal/ingest: the same ack policy, ack
// wait, max ack pending, batch, wait, workers and pull size) on the
// shared skeleton pkg/natsx.Consumer.
func (b *natsBench) consumer(js jetstream.JetStream, stream, durable string, handle natsx.Handler) *natsx.Consumer {
	c := b.ingest
	return natsx.NewConsumer(js, natsx.ConsumerConfig{
		Stream: stream,
		Consumer: jetstream.ConsumerConfig{
			Durable:       durable,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       c.AckWait,
			MaxDeliver:    -1,
			MaxAckPending: c.IngestBatch * c.IngestWorkers * 4,
			DeliverPolicy: jetstream.DeliverAllPolicy,
		},
		Batch:   c.IngestBatch,
		MaxWait: c.IngestMaxWait,
		Workers: c.IngestWorkers,
		Pull:    c.IngestBatch * c.IngestWorkers * 2,
		Log:     slog.New(slog.DiscardHandler),
	}, handle)
}

// outcomes is one outcome per message: all acks, or all retries.
func outcomes(n int, err error) []natsx.Outcome {
	out := make([]natsx.Outcome, n)
	for i := range out {
		if err != nil {
			out[i] = natsx.Retry(err)
		} else {
			out[i] = natsx.Ack()
		}
	}
	return out
}

// drained waits until the consumer has been delivered every message of its
// stream and the server has processed every ack.
func drained(ctx context.Context, js jetstream.JetStream, stream, durable string) error {
	cons, err := js.Consumer(ctx, stream, durable)
	if err != nil {
		return err
	}
	for {
		info, err := cons.Info(ctx)
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consumer %s not drained: %w (last error: %v)", durable, ctx.Err(), err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// running starts a consumer and returns a stop that cancels it and waits
// for it to finish.
func running(ctx context.Context, c *natsx.Consumer) (stop func()) {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { c.Run(runCtx); close(done) }()
	return func() { cancel(); <-done }
}

// consume: the consumer reads what "publish" stored, acking each message.
func (b *natsBench) consume(ctx context.Context) (measure, error) {
	nc, err := b.connect("consumer")
	if err != nil {
		return measure{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return measure{}, err
	}
	if err := checkStored(ctx, js, b.events.Name, b.o.n); err != nil {
		return measure{}, fmt.Errorf("consume reads what publish stored, so runs after it: %w", err)
	}
	const durable = "floors-consume"
	handled := newCounter(b.o.n)
	cons := b.consumer(js, b.events.Name, durable, func(_ context.Context, bt *natsx.Batch) []natsx.Outcome {
		handled.add(len(bt.Msgs))
		return outcomes(len(bt.Msgs), nil)
	})
	var stop func()
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	return b.measured(ctx, "consume: pull consumer, batches, Ack each", func(ctx context.Context) error {
		stop = running(ctx, cons) // set up inside the measure: the backlog is waiting
		if err := handled.wait(ctx, "messages handled"); err != nil {
			return err
		}
		return drained(ctx, js, b.events.Name, durable)
	})
}

// chain: the NATS work of ingest for n events of one recipient each.
func (b *natsBench) chain(ctx context.Context) (measure, error) {
	pubConn, pubJS, failed, err := b.producer()
	if err != nil {
		return measure{}, err
	}
	defer pubConn.Close()
	for _, cfg := range []jetstream.StreamConfig{b.events, b.notify} {
		if err := b.createStream(ctx, pubJS, cfg); err != nil {
			return measure{}, err
		}
		defer b.deleteStream(ctx, cfg.Name)
	}
	got := newCounter(b.o.n)
	sub, err := b.subscribe(b.live, got)
	if err != nil {
		return measure{}, err
	}
	defer sub.Close()

	// The consumer's connection and JetStream context are set up as the
	// services' (pkg/app: jetstream.New with its defaults).
	consConn, err := b.connect("ingest")
	if err != nil {
		return measure{}, err
	}
	defer consConn.Close()
	consJS, err := jetstream.New(consConn)
	if err != nil {
		return measure{}, err
	}
	const durable = "floors-chain"
	cons := b.consumer(consJS, b.events.Name, durable, func(ctx context.Context, bt *natsx.Batch) []natsx.Outcome {
		// As ingest: publish the batch's notifications in its turn, then
		// await their acks, then ack the events.
		futures := make([]jetstream.PubAckFuture, 0, len(bt.Msgs))
		timeout := time.NewTimer(b.ingest.AckWait / 2)
		defer timeout.Stop()
		var err error
		bt.InOrder(func() {
			for _, m := range bt.Msgs {
				i, perr := strconv.Atoi(strings.TrimPrefix(m.Headers().Get(nats.MsgIdHdr), "e-"))
				if perr != nil {
					err = fmt.Errorf("event without its id: %w", perr)
					return
				}
				f, perr := consJS.PublishMsgAsync(b.noteMsg(i))
				if perr != nil {
					err = perr
					return
				}
				futures = append(futures, f)
			}
		})
		for _, f := range futures {
			if err != nil {
				break
			}
			select {
			case <-f.Ok():
			case err = <-f.Err():
			case <-timeout.C:
				err = errors.New("no ack in time")
			}
		}
		return outcomes(len(bt.Msgs), err)
	})
	stop := running(ctx, cons)
	defer stop()
	if err := consumerReady(ctx, pubJS, b.events.Name, durable); err != nil {
		return measure{}, err
	}
	m, err := b.measured(ctx, "chain: EVENTS → consumer → NOTIFY + RePublish → subscriber", func(ctx context.Context) error {
		if err := publishAll(ctx, pubJS, failed, b.o.n, b.eventMsg); err != nil {
			return err
		}
		if err := got.wait(ctx, "notifications received"); err != nil {
			return err
		}
		return drained(ctx, pubJS, b.events.Name, durable)
	})
	if err != nil {
		return m, err
	}
	return m, checkStored(ctx, pubJS, b.notify.Name, b.o.n)
}

// consumerReady waits until the consumer exists on the server, so that its
// set-up is not measured.
func consumerReady(ctx context.Context, js jetstream.JetStream, stream, durable string) error {
	for {
		if _, err := js.Consumer(ctx, stream, durable); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consumer %s was not set up: %w", durable, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
