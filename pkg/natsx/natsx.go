// Package natsx is the NATS and JetStream plumbing shared by the services:
// connecting, declaring the streams and buckets until they exist
// (setup.go), the one event-consumer skeleton (consumer.go), dead-lettering,
// and the embedded server of the standalone binary.
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

// Connect dials url with the credentials and TLS of auth and keeps
// reconnecting forever: a service outlives a NATS restart instead of
// exiting. Replies to the connection's requests (JetStream API answers,
// publish acknowledgements, pulled messages) come on the inbox prefix
// InboxPrefix(name), so that a server's permissions can give each service
// its own replies and no one else's. Extra options (such as an in-process
// connection) are applied last.
func Connect(url string, auth config.NATSAuth, name string, log *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	authOpts, err := ClientOptions(auth)
	if err != nil {
		return nil, err
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.CustomInboxPrefix(InboxPrefix(name)),
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
	opts = append(append(opts, authOpts...), extra...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		if url == "" { // in-process: notifyd's embedded server
			return nil, fmt.Errorf("connect to the embedded nats: %w", err)
		}
		return nil, fmt.Errorf("cannot connect to NATS_URL=%s (auth %s; is the server up, and the address right?): %w", RedactURL(url), auth.Method(), err)
	}
	where := nc.ConnectedUrlRedacted()
	if nc.Opts.InProcessServer != nil {
		where = "in-process"
	}
	log.Info("nats connected", "url", where, "auth", auth.Method(), "tls", auth.TLS(), "inbox", InboxPrefix(name))
	return nc, nil
}

// InboxPrefix is the prefix of the reply subjects of the service called
// name: "_INBOX_<name>". Each service's NATS user may subscribe to its own
// prefix only (docs/operations.md); producers keep the default "_INBOX.",
// which does not match it.
func InboxPrefix(name string) string { return "_INBOX_" + name }

// ClientOptions turns auth into nats.go options: one of a credentials file,
// an NKey seed file, a user and password, or a token, and TLS with the
// given CAs and client certificate. Files are read here, so that a bad one
// is reported at start with its variable's name.
func ClientOptions(auth config.NATSAuth) ([]nats.Option, error) {
	type option struct {
		variable string
		opt      nats.Option
	}
	var list []option
	switch {
	case auth.CredsFile != "":
		list = append(list, option{"NATS_CREDS", nats.UserCredentials(auth.CredsFile)})
	case auth.NKeySeedFile != "":
		opt, err := nats.NkeyOptionFromSeed(auth.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("NATS_NKEY_SEED %s: %w", auth.NKeySeedFile, err)
		}
		list = append(list, option{"NATS_NKEY_SEED", opt})
	case auth.User != "":
		list = append(list, option{"NATS_USER", nats.UserInfo(auth.User, auth.Password)})
	case auth.Token != "":
		list = append(list, option{"NATS_TOKEN", nats.Token(auth.Token)})
	}
	if auth.TLSCA != "" {
		list = append(list, option{"NATS_TLS_CA", nats.RootCAs(auth.TLSCA)})
	}
	if auth.TLSCert != "" {
		list = append(list, option{"NATS_TLS_CERT/NATS_TLS_KEY", nats.ClientCert(auth.TLSCert, auth.TLSKey)})
	}
	// The TLS options read and parse their files when applied: apply each
	// once here, so that a bad file is named by its variable at start.
	var probe nats.Options
	opts := make([]nats.Option, 0, len(list))
	for _, o := range list {
		if err := o.opt(&probe); err != nil {
			return nil, fmt.Errorf("%s: %w", o.variable, err)
		}
		opts = append(opts, o.opt)
	}
	return opts, nil
}

// RedactURL hides the user information (user, password or token) of every
// URL of a comma-separated NATS server list, for logs and errors. It works
// on the text, so that a URL without a scheme ("u:p@host:4222") is hidden
// too.
func RedactURL(servers string) string {
	parts := strings.Split(servers, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if at := strings.LastIndex(p, "@"); at >= 0 {
			prefix := ""
			if scheme := strings.Index(p, "://"); scheme >= 0 && scheme < at {
				prefix = p[:scheme+3]
			}
			p = prefix + "redacted" + p[at:]
		}
		parts[i] = p
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
