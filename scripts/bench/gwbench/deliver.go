package gwbench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/publisher"
)

// How long a published message may wait for its JetStream ack, and how many
// may be in flight, before the publisher slows down.
const (
	publishAckTimeout = 10 * time.Second
	publishMaxPending = 4096
	rssSampleEvery    = 250 * time.Millisecond
)

// stampedMessage is contract.UserMessage carrying a contract.Notification
// whose data is a stamp, typed throughout so that one Marshal builds it:
// nested json.RawMessage fields are re-compacted on every Marshal, which
// made the publisher the busiest process of the load generator. A test
// checks that it decodes as the contract types.
type stampedMessage struct {
	Event string              `json:"event"`
	Data  stampedNotification `json:"data"`
}

type stampedNotification struct {
	ID        string            `json:"id"`
	Type      string            `json:"type"`
	Priority  contract.Priority `json:"priority"`
	Title     string            `json:"title"`
	Message   string            `json:"message"`
	Data      Stamp             `json:"data"`
	EventID   string            `json:"eventId"`
	Read      bool              `json:"read"`
	ReadAt    *time.Time        `json:"readAt"`
	CreatedAt time.Time         `json:"createdAt"`
}

// benchPublisher publishes stamped notifications or events and counts the
// acks.
type benchPublisher struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	org string

	acked, failed atomic.Int64
	mu            sync.Mutex
	firstErr      error
}

func newPublisher(url, org string) (*benchPublisher, error) {
	nc, err := nats.Connect(url, nats.Name("gwbench-publisher"), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect nats %s: %w", url, err)
	}
	p := &benchPublisher{nc: nc, org: org}
	p.js, err = jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(publishMaxPending),
		jetstream.WithPublishAsyncTimeout(publishAckTimeout),
		jetstream.WithPublishAsyncAckHandler(func(jetstream.JetStream, *nats.Msg, *jetstream.PubAck) { p.acked.Add(1) }),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) { p.fail(err) }),
	)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return p, nil
}

func (p *benchPublisher) fail(err error) {
	p.failed.Add(1)
	p.mu.Lock()
	if p.firstErr == nil {
		p.firstErr = err
	}
	p.mu.Unlock()
}

func (p *benchPublisher) close() { p.nc.Close() }

// message builds the message of one stamped notification: for the fan-out
// phase the user message itself on notify.user.<id>, for the pipeline phase
// the domain event that notification-api turns into one.
func (p *benchPublisher) message(user string, st Stamp) (*nats.Msg, error) {
	id := fmt.Sprintf("bench-%s-%s-%d", st.Run, st.Phase, st.Seq)
	switch st.Phase {
	case PhaseFanout:
		body, err := json.Marshal(stampedMessage{Event: contract.UserEventNotification, Data: stampedNotification{
			ID: id, Type: "SYSTEM", Priority: contract.PriorityMedium, Title: "Benchmark",
			Message: "A notification published by the gateway benchmark.", Data: st,
			EventID: id, CreatedAt: time.Unix(0, st.SentAt).UTC(),
		}})
		if err != nil {
			return nil, err
		}
		msg := nats.NewMsg(contract.NotifySubject(user))
		msg.Data = body
		return msg, nil
	case PhasePipeline:
		data, err := structpb.NewStruct(map[string]any{
			"benchRun": st.Run, "benchPhase": st.Phase, "benchSeq": float64(st.Seq), "benchSentAt": float64(st.SentAt),
		})
		if err != nil {
			return nil, err
		}
		return publisher.Message(&contract.Event{
			Id: id, Type: "SYSTEM", OccurredAt: timestamppb.New(time.Unix(0, st.SentAt)),
			OrganizationId: p.org, Recipients: []string{user}, Data: data,
		})
	default:
		return nil, fmt.Errorf("unknown phase %q", st.Phase)
	}
}

// publish sends rate messages a second to random users for d, stamping
// each with the time it was handed to the client library, and waits for
// the acks. It returns how many the stream acknowledged.
func (p *benchPublisher) publish(ctx context.Context, run, phase string, users []string, rate int, d time.Duration) (sent int64, took time.Duration, err error) {
	p.acked.Store(0)
	p.failed.Store(0)
	p.mu.Lock()
	p.firstErr = nil
	p.mu.Unlock()
	total := int64(float64(rate) * d.Seconds())
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	var seq int64
	for seq < total {
		due := min(total, int64(time.Since(start).Seconds()*float64(rate))+1)
		for ; seq < due; seq++ {
			st := Stamp{Run: run, Phase: phase, Seq: uint64(seq), SentAt: time.Now().UnixNano()}
			msg, err := p.message(users[rand.IntN(len(users))], st)
			if err != nil {
				return seq, time.Since(start), err
			}
			// A burst outruns the acks: wait for room among the
			// publishMaxPending in flight rather than fail after the
			// library's default 200 ms.
			if _, err := p.js.PublishMsgAsync(msg, jetstream.WithStallWait(publishAckTimeout)); err != nil {
				p.fail(err)
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return seq, time.Since(start), ctx.Err()
		}
	}
	took = time.Since(start)
	select {
	case <-p.js.PublishAsyncComplete():
	case <-time.After(publishAckTimeout + 5*time.Second):
		return seq, took, fmt.Errorf("%d publishes still without an ack", p.js.PublishAsyncPending())
	case <-ctx.Done():
		return seq, took, ctx.Err()
	}
	return seq, took, nil
}

// deliver runs one delivery phase: publishes for cfg.Duration while
// sampling the server, waits for the last messages, and collects the
// clients' latencies.
func deliver(ctx context.Context, cfg Config, run, phase string, pub *benchPublisher, workers []*workerProc, users []string) (*DeliveryResult, error) {
	rate := cfg.Rate
	if phase == PhasePipeline && cfg.PipelineRate > 0 {
		rate = cfg.PipelineRate
	}
	d := &DeliveryResult{Phase: phase, Rate: rate, Seconds: cfg.Duration.Seconds()}
	if err := cfg.hook(phase, PhaseStart); err != nil {
		return nil, err
	}
	server := processes(cfg.ServerPIDs)
	cpu0, err := server.cpuTicks()
	if err != nil {
		return nil, err
	}
	wait0, err := server.runqueueWaitNs()
	if err != nil {
		return nil, err
	}
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var maxRSS atomic.Int64
	var sampling sync.WaitGroup
	sampling.Go(func() {
		t := time.NewTicker(rssSampleEvery)
		defer t.Stop()
		for {
			if kb, err := server.rssKB(); err == nil && kb > maxRSS.Load() {
				maxRSS.Store(kb)
			}
			select {
			case <-t.C:
			case <-sampleCtx.Done():
				return
			}
		}
	})
	defer func() { stopSampling(); sampling.Wait() }()

	sent, took, err := pub.publish(ctx, run, phase, users, rate, cfg.Duration)
	if err != nil {
		return nil, err
	}
	cpu1, err := server.cpuTicks()
	if err != nil {
		return nil, err
	}
	d.PublishSeconds = took.Seconds()
	d.ServerCPUPercent = float64(cpu1-cpu0) / clockTicks / took.Seconds() * 100
	if wait1, err := server.runqueueWaitNs(); err == nil {
		d.ServerWaitPercent = float64(wait1-wait0) / 1e9 / took.Seconds() * 100
	}
	d.Published = pub.acked.Load()
	d.PublishErrors = pub.failed.Load()
	if d.PublishErrors > 0 {
		pub.mu.Lock()
		d.PublishError = pub.firstErr.Error()
		pub.mu.Unlock()
	}
	if d.Published+d.PublishErrors != sent {
		return nil, fmt.Errorf("sent %d but counted %d acks and %d errors", sent, d.Published, d.PublishErrors)
	}

	stats, err := waitForDelivery(ctx, workers, phase, d.Published, cfg.Drain)
	if err != nil {
		return nil, err
	}
	if err := cfg.hook(phase, PhaseEnd); err != nil {
		return nil, err
	}
	cpu2, err := server.cpuTicks()
	if err != nil {
		return nil, err
	}
	d.ServerCPUSeconds = float64(cpu2-cpu0) / clockTicks
	stopSampling()
	sampling.Wait()
	d.MaxRSSKB = maxRSS.Load()
	d.Received = stats.Received
	d.Duplicates = stats.Duplicates
	d.Lost = max(d.Published-d.Received, 0)
	d.Disconnects = stats.Disconnects

	var samples []uint32
	for _, w := range workers {
		rep, err := w.call(request{Op: "samples", Phase: phase})
		if err != nil {
			return nil, err
		}
		samples = append(samples, rep.Samples...)
	}
	p := percentiles(samples, 0.5, 0.9, 0.99, 0.999, 1)
	d.P50Ms, d.P90Ms, d.P99Ms, d.P999Ms, d.MaxMs = p[0], p[1], p[2], p[3], p[4]
	return d, nil
}

func (c Config) hook(phase, stage string) error {
	if c.PhaseHook == nil {
		return nil
	}
	if err := c.PhaseHook(phase, stage); err != nil {
		return fmt.Errorf("phase hook at the %s of %s: %w", stage, phase, err)
	}
	return nil
}

// waitForDelivery polls the workers until every published message has
// arrived or none has arrived for drain.
func waitForDelivery(ctx context.Context, workers []*workerProc, phase string, published int64, drain time.Duration) (PhaseStats, error) {
	var last int64 = -1
	lastProgress := time.Now()
	for {
		stats, err := gatherStats(workers, phase)
		if err != nil {
			return stats, err
		}
		if stats.Received >= published {
			return stats, nil
		}
		if stats.Received != last {
			last, lastProgress = stats.Received, time.Now()
		} else if time.Since(lastProgress) > drain {
			return stats, nil
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return stats, err
		}
	}
}
