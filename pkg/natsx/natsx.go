// Package natsx is the NATS and JetStream plumbing shared by the services:
// connecting, declaring the streams, the embedded server of the standalone
// binary, and dead-lettering.
package natsx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/contract"
)

// Stream names.
const (
	StreamEvents     = "EVENTS"
	StreamNotify     = "NOTIFY"
	StreamDeadLetter = "DEADLETTER"
)

// Connect dials url and keeps reconnecting forever: a service outlives a
// NATS restart instead of exiting. Extra options (such as an in-process
// connection) are applied last.
func Connect(url, name string, log *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Error("nats async error", "subject", subject, "err", err)
		}),
	}
	nc, err := nats.Connect(url, append(opts, extra...)...)
	if err != nil {
		if url == "" { // in-process: notifyd's embedded server
			return nil, fmt.Errorf("connect to the embedded nats: %w", err)
		}
		return nil, fmt.Errorf("cannot connect to NATS_URL=%s (is the server up, and the address right?): %w", RedactURL(url), err)
	}
	return nc, nil
}

// RedactURL hides the credentials (user, password or token) of a NATS URL
// or comma-separated list of URLs, so that it can be shown in an error.
func RedactURL(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			prefix := ""
			if scheme := strings.Index(p, "://"); scheme >= 0 && scheme < at {
				prefix = p[:scheme+3]
			}
			parts[i] = prefix + "REDACTED" + p[at:]
		}
	}
	return strings.Join(parts, ",")
}

// StreamConfigs returns the configuration of the three streams for the
// given retention.
func StreamConfigs(s config.Streams) []jetstream.StreamConfig {
	replicas := max(s.Replicas, 1)
	return []jetstream.StreamConfig{
		{
			Name:        StreamEvents,
			Description: "Domain events published by the Xpeditis backend services",
			Subjects:    []string{"events.>"},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      s.EventsMaxAge,
			Storage:     jetstream.FileStorage,
			Duplicates:  2 * time.Minute,
			MaxMsgSize:  contract.MaxEventBytes + 16<<10, // headers and slack
			Replicas:    replicas,
		},
		{
			Name:              StreamNotify,
			Description:       "Short per-user history of realtime messages",
			Subjects:          []string{"notify.user.*"},
			Retention:         jetstream.LimitsPolicy,
			MaxAge:            s.NotifyMaxAge,
			MaxMsgsPerSubject: s.NotifyMaxMsgsPerSubject,
			Discard:           jetstream.DiscardOld,
			Storage:           jetstream.FileStorage,
			Duplicates:        2 * time.Minute,
			MaxMsgSize:        contract.MaxEventBytes + 16<<10,
			Replicas:          replicas,
			// Every stored message is republished on live.user.<id> with its
			// stream sequence (Nats-Sequence) and the sequence of the previous
			// message of the same user (Nats-Last-Sequence), so that the
			// gateway's core subscriptions see offsets and can detect gaps.
			RePublish: &jetstream.RePublish{Source: "notify.user.*", Destination: "live.user.{{wildcard(1)}}"},
		},
		{
			Name:        StreamDeadLetter,
			Description: "Events set aside by a consumer, with the reason",
			Subjects:    []string{"deadletter.>"},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      30 * 24 * time.Hour,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
		},
	}
}

// EnsureStreams creates the streams or updates them to the configured
// retention; it is safe to call from every replica at every start.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, s config.Streams) error {
	for _, cfg := range StreamConfigs(s) {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}

// Dead-letter headers.
const (
	HeaderDeadLetterReason   = "Notify-Dead-Letter-Reason"
	HeaderDeadLetterConsumer = "Notify-Dead-Letter-Consumer"
	HeaderDeadLetterSubject  = "Notify-Dead-Letter-Subject"
	HeaderDeadLetterSequence = "Notify-Dead-Letter-Sequence"
)

// DeadLetterSubject is where a consumer sets aside a message it received on
// subject.
func DeadLetterSubject(consumer, subject string) string {
	return "deadletter." + consumer + "." + subject
}

// DeadLetter copies msg to the DEADLETTER stream with the reason, then
// terminates it so that the stream moves on. The copy is stored before the
// original is let go, so nothing is lost. It reports whether the copy is
// new: a redelivery of a message already set aside (its Term was late) is
// de-duplicated by the stream and reported as not new, so that callers
// count each dead letter once.
func DeadLetter(ctx context.Context, js jetstream.JetStream, consumer string, msg jetstream.Msg, reason string) (bool, error) {
	out := nats.NewMsg(DeadLetterSubject(consumer, msg.Subject()))
	out.Data = msg.Data()
	out.Header.Set(HeaderDeadLetterReason, reason)
	out.Header.Set(HeaderDeadLetterConsumer, consumer)
	out.Header.Set(HeaderDeadLetterSubject, msg.Subject())
	if md, err := msg.Metadata(); err == nil {
		seq := fmt.Sprint(md.Sequence.Stream)
		out.Header.Set(HeaderDeadLetterSequence, seq)
		out.Header.Set(nats.MsgIdHdr, consumer+":"+seq)
	}
	ack, err := js.PublishMsg(ctx, out)
	if err != nil {
		return false, fmt.Errorf("dead-letter: %w", err)
	}
	if err := msg.Term(); err != nil && !errors.Is(err, nats.ErrMsgAlreadyAckd) {
		return false, fmt.Errorf("dead-letter: term: %w", err)
	}
	return !ack.Duplicate, nil
}

// Feed is the only reader of iter: it passes each message to out until the
// iterator is stopped or ctx ends, then closes out. Consumers batch from out
// with plain channel operations. Calling Next with short waits instead (from
// several workers, to fill batches) left messages unprocessed until their
// ack wait ran out: 2-31 events of 200,000 in 4 of 14 ingest runs at 10,000
// events/s, none in 8 runs with Feed (BENCHMARKS.md).
func Feed(ctx context.Context, iter jetstream.MessagesContext, out chan<- jetstream.Msg, log *slog.Logger) {
	defer close(out)
	for {
		msg, err := iter.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return
		}
		if err != nil {
			log.Warn("next message", "err", err)
			continue
		}
		select {
		case out <- msg:
		case <-ctx.Done():
			return // not passed on: redelivered after the ack wait
		}
	}
}

// KeepConsuming runs consume until ctx ends, and starts it again after a
// pause growing from 1 s to 30 s whenever it returns before that, logging
// why: a consumer that cannot be set up or whose iterator ends must not
// leave a service running without reading its stream.
func KeepConsuming(ctx context.Context, log *slog.Logger, consume func(context.Context) error) {
	pause := time.Second
	for {
		err := consume(ctx)
		if ctx.Err() != nil {
			return
		}
		log.Error("event consumer stopped; starting it again", "err", err, "in", pause.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 30*time.Second)
	}
}
