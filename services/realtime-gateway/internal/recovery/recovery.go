// Package recovery lets a client that lost its connection get back every
// message it missed. The NOTIFY stream is the history: offsets are its
// sequences, and a replay is an ordered consumer filtered on the user's
// subject. What the stream cannot say is which sessions exist and until when
// they may be recovered; that is a JetStream key-value bucket shared by every
// gateway.
//
// A Socket.IO session's record (user, socket id, start, the gateway serving
// it) is written under its private id (pid) when the session is established,
// so that it survives the gateway whatever way the gateway ends. While the
// session is connected, the recovery window counts from its gateway's last
// heartbeat (one key per gateway, written every few seconds: a gateway killed
// with SIGKILL simply stops beating); once a gateway sees the session end, it
// writes the time into the record and the window counts from there. Each
// record carries its own TTL (the token's expiry plus the window while
// connected, the window once disconnected), so the bucket keeps nothing
// longer than it can be used.
package recovery

import (
	"context"
	"crypto/rand"
	"encoding/base64"
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

// Bucket is the key-value bucket of sessions and gateway heartbeats.
const Bucket = "GATEWAY_SESSIONS"

// beatPrefix starts the key of a gateway's heartbeat; no pid contains a dot.
const beatPrefix = "gw."

// ErrReplaced is returned by Update when the record is no longer the one the
// connection wrote: the session was recovered by another connection, which
// owns it now.
var ErrReplaced = errors.New("recovery: the session record belongs to another connection")

// Store reads and writes session records and replays the NOTIFY stream.
type Store struct {
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	stream  jetstream.Stream
	window  time.Duration
	gateway string // this process's id in the records and its heartbeat key
}

// Open creates or updates the bucket, retrying until it exists (reporting
// to cond) or ctx ends. Records expire by their own TTL, so the bucket has
// no age limit of its own.
func Open(ctx context.Context, js jetstream.JetStream, window time.Duration, replicas int, cond *health.Condition) (*Store, error) {
	kv, err := natsx.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:       Bucket,
		Description:  "Socket.IO sessions of the realtime gateways and the gateways' heartbeats, for recovery",
		History:      1,
		MaxValueSize: 1024,
		Storage:      jetstream.FileStorage,
		Replicas:     max(replicas, 1),
		// Turns on per-message TTLs; the markers it leaves when a record
		// expires live this long.
		LimitMarkerTTL: time.Second,
	}, cond)
	if err != nil {
		return nil, fmt.Errorf("recovery bucket: %w", err)
	}
	stream, err := js.Stream(ctx, natsx.StreamNotify)
	if err != nil {
		return nil, fmt.Errorf("recovery: stream %s: %w", natsx.StreamNotify, err)
	}
	var id [12]byte
	_, _ = rand.Read(id[:])
	return &Store{js: js, kv: kv, stream: stream, window: window, gateway: base64.RawURLEncoding.EncodeToString(id[:])}, nil
}

// Session is what the gateways share of one Socket.IO session.
type Session struct {
	User  string `json:"u"`
	SID   string `json:"sid"`
	Start int64  `json:"t0"` // when the session began, Unix ms
	// Conn is the connection that wrote the record (its Engine.IO id): a
	// recovered session gets a new one, so that the old connection's late
	// writes are refused.
	Conn    string `json:"c,omitempty"`
	Gateway string `json:"g,omitempty"` // the gateway serving it
	// Disconnected is when the session's gateway saw it end, Unix ms; 0
	// while it is connected.
	Disconnected int64 `json:"d,omitempty"`
	// Ended says the client left on purpose: the session is not recovered.
	Ended bool `json:"x,omitempty"`
}

// BeatEvery is how often a gateway writes its heartbeat. A session whose
// gateway died is recoverable for the window counted from the last beat, so
// the window is at most this much shorter than it would have been.
func (s *Store) BeatEvery() time.Duration {
	return min(5*time.Second, max(s.window/4, 100*time.Millisecond))
}

// Beat records that this gateway is alive at now and serves its sessions.
func (s *Store) Beat(ctx context.Context, now time.Time) error {
	b, _ := json.Marshal(beat{At: now.UnixMilli()})
	if _, err := s.publish(ctx, beatPrefix+s.gateway, b, s.window+2*s.BeatEvery(), nil); err != nil {
		return fmt.Errorf("recovery: heartbeat: %w", err)
	}
	return nil
}

type beat struct {
	At int64 `json:"t"` // Unix ms
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

// Put records a session this gateway has just established (or recovered:
// the record is taken over) and returns the record's revision. alive is the
// latest the connection can last (its token's expiry): the record is kept
// for the window after it.
func (s *Store) Put(ctx context.Context, pid string, sess Session, alive time.Time) (uint64, error) {
	if !ValidPID(pid) {
		return 0, fmt.Errorf("recovery: invalid pid")
	}
	sess.Gateway, sess.Disconnected, sess.Ended = s.gateway, 0, false
	b, err := json.Marshal(sess)
	if err != nil {
		return 0, fmt.Errorf("recovery: encode: %w", err)
	}
	rev, err := s.publish(ctx, pid, b, s.ttl(sess, alive), nil)
	if err != nil {
		return 0, fmt.Errorf("recovery: save: %w", err)
	}
	return rev, nil
}

// Update replaces the record this connection (sess.Conn) wrote at revision
// rev: a new token's expiry while connected, or the end of the session
// (Disconnected or Ended set). It returns the new revision, or ErrReplaced
// when another connection has taken the session over.
func (s *Store) Update(ctx context.Context, pid string, rev uint64, sess Session, alive time.Time) (uint64, error) {
	if !ValidPID(pid) {
		return 0, fmt.Errorf("recovery: invalid pid")
	}
	sess.Gateway = s.gateway
	b, err := json.Marshal(sess)
	if err != nil {
		return 0, fmt.Errorf("recovery: encode: %w", err)
	}
	ttl := s.ttl(sess, alive)
	for attempt := 0; ; attempt++ {
		newRev, err := s.publish(ctx, pid, b, ttl, &rev)
		if err == nil {
			return newRev, nil
		}
		if !wrongRevision(err) {
			return 0, fmt.Errorf("recovery: save: %w", err)
		}
		if attempt > 0 {
			return 0, ErrReplaced
		}
		// The revision moved: an update of this connection's that finished
		// after this one was queued, or another connection's takeover.
		e, err := s.kv.Get(ctx, pid)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return 0, ErrReplaced
		}
		if err != nil {
			return 0, fmt.Errorf("recovery: load: %w", err)
		}
		var cur Session
		if json.Unmarshal(e.Value(), &cur) != nil || cur.Conn != sess.Conn || cur.Gateway != s.gateway {
			return 0, ErrReplaced
		}
		rev = e.Revision()
	}
}

// ttl is how long a record is worth keeping.
func (s *Store) ttl(sess Session, alive time.Time) time.Duration {
	switch {
	case sess.Ended:
		return time.Second
	case sess.Disconnected != 0:
		return s.window
	default:
		return time.Until(alive) + s.window
	}
}

// publish writes a record with its TTL (rounded up to the second, as the
// server keeps it), after rev when rev is given.
func (s *Store) publish(ctx context.Context, key string, value []byte, ttl time.Duration, rev *uint64) (uint64, error) {
	ttl = max((ttl + time.Second - 1).Truncate(time.Second), time.Second)
	opts := []jetstream.PublishOpt{jetstream.WithMsgTTL(ttl)}
	if rev != nil {
		opts = append(opts, jetstream.WithExpectLastSequencePerSubject(*rev))
	}
	ack, err := s.js.Publish(ctx, "$KV."+Bucket+"."+key, value, opts...)
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

func wrongRevision(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Load returns the session recorded under pid when it may be recovered at
// now: it did not end on purpose, and it was disconnected (or its gateway
// was last seen alive) within the window.
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
	if err := json.Unmarshal(e.Value(), &sess); err != nil || sess.Ended {
		return Session{}, false, nil
	}
	gone := time.UnixMilli(sess.Disconnected)
	if sess.Disconnected == 0 {
		// Connected as far as its gateway said: if that gateway is alive,
		// the client lost the connection before the gateway noticed;
		// otherwise the session ended with the gateway's last beat.
		var ok bool
		if gone, ok, err = s.lastSeen(ctx, sess.Gateway, now); err != nil || !ok {
			return Session{}, false, err
		}
	}
	// Records expire on the server's schedule; the window is also checked
	// here so that it is exact.
	if now.Sub(gone) > s.window {
		return Session{}, false, nil
	}
	return sess, true, nil
}

// lastSeen is when a gateway last said it was alive.
func (s *Store) lastSeen(ctx context.Context, gateway string, now time.Time) (time.Time, bool, error) {
	if gateway == s.gateway {
		return now, true, nil
	}
	if gateway == "" {
		return time.Time{}, false, nil
	}
	e, err := s.kv.Get(ctx, beatPrefix+gateway)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return time.Time{}, false, nil // gone for longer than the window
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("recovery: heartbeat: %w", err)
	}
	var b beat
	if err := json.Unmarshal(e.Value(), &b); err != nil {
		return time.Time{}, false, nil
	}
	return time.UnixMilli(b.At), true, nil
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
