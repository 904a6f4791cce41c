// Package recovery lets a client that lost its connection get back every
// message it missed. The NOTIFY stream is the history: offsets are its
// sequences, and a replay is an ordered consumer filtered on the user's
// subject. What the stream cannot say is when a Socket.IO session was
// disconnected; that is a JetStream key-value bucket shared by every gateway:
// the session's record (user, id, start) is written under its private id
// (pid) when the connection closes, and the bucket's TTL is the recovery
// window, so a record that can be read is a session that may be recovered.
package recovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/health"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/hub"
)

// Bucket is the key-value bucket of disconnected sessions.
const Bucket = "GATEWAY_SESSIONS"

// Store reads and writes session records and replays the NOTIFY stream.
type Store struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	stream jetstream.Stream
	window time.Duration
}

// Open creates or updates the bucket with the window as its TTL, retrying
// until it exists (reporting to cond) or ctx ends.
func Open(ctx context.Context, js jetstream.JetStream, window time.Duration, replicas int, cond *health.Condition) (*Store, error) {
	kv, err := natsx.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:       Bucket,
		Description:  "Disconnected Socket.IO sessions of the realtime gateway, kept for the recovery window",
		TTL:          window,
		History:      1,
		MaxValueSize: 1024,
		Storage:      jetstream.FileStorage,
		Replicas:     max(replicas, 1),
	}, cond)
	if err != nil {
		return nil, fmt.Errorf("recovery bucket: %w", err)
	}
	stream, err := js.Stream(ctx, natsx.StreamNotify)
	if err != nil {
		return nil, fmt.Errorf("recovery: stream %s: %w", natsx.StreamNotify, err)
	}
	return &Store{js: js, kv: kv, stream: stream, window: window}, nil
}

// Session is what a gateway remembers of a disconnected Socket.IO session.
type Session struct {
	User         string `json:"u"`
	SID          string `json:"sid"`
	Start        int64  `json:"t0"` // when the session began, Unix ms
	Disconnected int64  `json:"d"`  // Unix ms
}

// ValidPID reports whether pid is an id this gateway could have issued; any
// other value is never used as a key.
func ValidPID(pid string) bool {
	if len(pid) == 0 || len(pid) > 64 {
		return false
	}
	for i := 0; i < len(pid); i++ {
		c := pid[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Save records a disconnected session under its pid.
func (s *Store) Save(ctx context.Context, pid string, sess Session) error {
	if !ValidPID(pid) {
		return fmt.Errorf("recovery: invalid pid")
	}
	b, err := json.Marshal(sess)
	if err != nil {
		return fmt.Errorf("recovery: encode: %w", err)
	}
	if _, err := s.kv.Put(ctx, pid, b); err != nil {
		return fmt.Errorf("recovery: save: %w", err)
	}
	return nil
}

// Load returns the session disconnected under pid within the window.
func (s *Store) Load(ctx context.Context, pid string, now time.Time) (Session, bool, error) {
	if !ValidPID(pid) {
		return Session{}, false, nil
	}
	e, err := s.kv.Get(ctx, pid)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Session{}, false, nil
	}
	if err != nil {
		return Session{}, false, fmt.Errorf("recovery: load: %w", err)
	}
	var sess Session
	if err := json.Unmarshal(e.Value(), &sess); err != nil {
		return Session{}, false, nil
	}
	// The bucket's expiry runs on the server's schedule; the window is also
	// checked here so that it is exact.
	if now.Sub(time.UnixMilli(sess.Disconnected)) > s.window {
		return Session{}, false, nil
	}
	return sess, true, nil
}

// Point is where a replay resumes: after the stream sequence After, or, when
// After is 0, from the time Since (a session that had received nothing).
type Point struct {
	After uint64
	Since time.Time
}

// Complete reports whether every message of userID after p is still in the
// stream, so that a replay leaves no gap. Messages leave the stream oldest
// first (by age, or by the per-user limit), so the history after p is whole
// when an older message of the user is still there, or when nothing of the
// user was ever trimmed.
func (s *Store) Complete(ctx context.Context, userID string, p Point) (bool, error) {
	subj := contract.NotifySubject(userID)
	info, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return false, fmt.Errorf("recovery: stream info: %w", err)
	}
	if p.After > info.State.LastSeq {
		return false, nil // an offset from another stream's life
	}
	first, err := s.stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subj))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		// Nothing of the user is left: whole unless the stream aged out
		// messages after the point.
		return p.After == 0 || info.State.FirstSeq <= p.After+1, nil
	}
	if err != nil {
		return false, fmt.Errorf("recovery: first message: %w", err)
	}
	if p.After > 0 && first.Sequence <= p.After || p.After == 0 && first.Time.Before(p.Since) {
		return true, nil
	}
	// Every message of the user left is newer than the point: whole unless
	// the per-user limit trimmed some, or age took messages after the point.
	limit := info.Config.MaxMsgsPerSubject
	trimmed := limit > 0 && info.State.Subjects[subj] >= uint64(limit)
	aged := p.After > 0 && info.State.FirstSeq > p.After+1
	return !trimmed && !aged, nil
}

// Replay calls fn with every message of userID after p, in order, up to the
// user's last message at the time of the call. A message that cannot be
// decoded comes as a hub.Skip placeholder, as on the live path.
func (s *Store) Replay(ctx context.Context, userID string, p Point, fn func(*hub.Message) error) error {
	subj := contract.NotifySubject(userID)
	last, err := s.stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recovery: last message: %w", err)
	}
	if last.Sequence <= p.After {
		return nil // nothing was missed: no consumer needed
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}, InactiveThreshold: 30 * time.Second}
	if p.After > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, p.After+1
	} else {
		since := p.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := s.js.OrderedConsumer(ctx, natsx.StreamNotify, cfg)
	if err != nil {
		return fmt.Errorf("recovery: consumer: %w", err)
	}
	defer s.dropConsumer(cons)
	for {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return fmt.Errorf("recovery: fetch: %w", err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			md, err := msg.Metadata()
			if err != nil {
				return fmt.Errorf("recovery: metadata: %w", err)
			}
			seq := md.Sequence.Stream
			m, err := hub.NewMessage(seq, 0, msg.Data())
			if err != nil {
				m = hub.Skip(seq, 0)
			}
			if err := fn(m); err != nil {
				return err
			}
			if seq >= last.Sequence {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("recovery: fetch: %w", err)
		}
		if got == 0 {
			// The last message left the stream while replaying.
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// LastOffset returns the sequence of the user's latest message, 0 when the
// stream holds none.
func (s *Store) LastOffset(ctx context.Context, userID string) (uint64, error) {
	last, err := s.stream.GetLastMsgForSubject(ctx, contract.NotifySubject(userID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("recovery: last message: %w", err)
	}
	return last.Sequence, nil
}

// dropConsumer deletes a finished replay's consumer instead of leaving it to
// the inactivity threshold.
func (s *Store) dropConsumer(cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.js.DeleteConsumer(ctx, natsx.StreamNotify, info.Name)
}
