package natsx

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xpeditis/notify/pkg/backoff"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/health"
)

// setupRetry is the pause between attempts to set something up: replicas
// starting together, and a cluster electing its leaders, answer with
// timeouts, "no responders" or races for a while; every failure is
// retried.
var setupRetry = backoff.Policy{Base: 250 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.3}

// setupAttempt bounds one JetStream API request of a set-up.
const setupAttempt = 4 * time.Second

// Ensure calls ensure until it succeeds or ctx ends, reporting each failure
// to cond (which logs what the service waits for) and pausing with
// setupRetry between attempts. It returns nil once ensure succeeded, else
// ctx's error.
func Ensure(ctx context.Context, cond *health.Condition, ensure func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, setupAttempt)
		err := ensure(actx)
		cancel()
		if err == nil {
			cond.OK()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		cond.Fail(err)
		t := time.NewTimer(setupRetry.Delay(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// EnsureStreams creates the streams, or updates them to the configuration,
// each with its own condition ("stream:EVENTS", …) in h, and returns once
// all exist as configured, or when ctx ends. It is safe to run from every
// replica at every start.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, s config.Streams, h *health.Registry) error {
	cfgs := StreamConfigs(s)
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		cond := h.Condition("stream:" + cfg.Name)
		wg.Go(func() {
			errs[i] = Ensure(ctx, cond, func(ctx context.Context) error { return EnsureStream(ctx, js, cfg) })
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// EnsureStream makes one attempt at having the stream exist with want's
// configuration: created when missing, updated when it differs and
// JetStream allows the change, else an error saying what differs and what
// to do. A stream already as configured is left alone, so that replicas
// starting together send no update.
func EnsureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) error {
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err = js.CreateStream(ctx, want); err != nil {
			// jetstream.ErrStreamNameAlreadyInUse: another replica created it
			// first; the next attempt compares and updates.
			return fmt.Errorf("create stream %s: %w", want.Name, explainPlacement(js, want.Replicas, err))
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", want.Name, err)
	}
	have := s.CachedInfo().Config
	diffs := streamDiff(have, want)
	if len(diffs) == 0 {
		return nil
	}
	if _, err := js.UpdateStream(ctx, want); err != nil {
		return &IncompatibleStreamError{Stream: want.Name, Diffs: diffs, Err: explainPlacement(js, want.Replicas, err)}
	}
	return nil
}

// IncompatibleStreamError is a stream that exists with a configuration
// JetStream refused to change to ours.
type IncompatibleStreamError struct {
	Stream string
	Diffs  []string // "storage is memory, want file"
	Err    error
}

func (e *IncompatibleStreamError) Error() string {
	advice := "change it to match (nats stream edit " + e.Stream + "), or, if its messages may go, delete it (nats stream rm " + e.Stream + ") and the service creates it again"
	for _, d := range e.Diffs {
		if strings.HasPrefix(d, "storage ") || strings.HasPrefix(d, "retention ") {
			advice = "JetStream cannot change a stream's storage or retention: move its messages out if they matter, then delete it (nats stream rm " + e.Stream + ") and the service creates it again"
		}
	}
	return fmt.Sprintf("stream %s exists with another configuration (%s) that JetStream refused to update: %v; %s",
		e.Stream, strings.Join(e.Diffs, "; "), e.Err, advice)
}

func (e *IncompatibleStreamError) Unwrap() error { return e.Err }

// Server error codes of a placement the cluster cannot satisfy.
const (
	errNoPeers               jetstream.ErrorCode = 10005 // no suitable peers for placement
	errInsufficientResources jetstream.ErrorCode = 10023
	errReplicasNotClustered  jetstream.ErrorCode = 10074 // replicas > 1 not supported in non-clustered mode
)

// explainPlacement names the replica count and the cluster's size when the
// server could not place the replicas: STREAM_REPLICAS larger than the
// cluster (or a cluster still forming, while its servers find each other).
func explainPlacement(js jetstream.JetStream, replicas int, err error) error {
	var api *jetstream.APIError
	if !errors.As(err, &api) {
		return err
	}
	switch api.ErrorCode {
	case errReplicasNotClustered:
		return fmt.Errorf("STREAM_REPLICAS is %d but the NATS server is not part of a cluster (1 server): set STREAM_REPLICAS=1 or run a cluster: %w", replicas, err)
	case errNoPeers, errInsufficientResources:
		servers := map[string]bool{}
		for _, u := range js.Conn().Servers() {
			servers[u] = true
		}
		return fmt.Errorf("STREAM_REPLICAS is %d but the NATS cluster has %d servers that the client knows of: lower STREAM_REPLICAS or add servers (a cluster still starting reports this until its servers have met): %w",
			replicas, len(servers), err)
	}
	return err
}

// streamDiff lists what differs between the settings we declare and the
// stream's, in words; the server's defaults for what we leave unset are
// not differences.
func streamDiff(have, want jetstream.StreamConfig) []string {
	var out []string
	diff := func(name string, h, w any) {
		if !reflect.DeepEqual(h, w) {
			out = append(out, fmt.Sprintf("%s is %v, want %v", name, h, w))
		}
	}
	unlimited := func(v int64) int64 { return max(v, 0) }
	diff("subjects", have.Subjects, want.Subjects)
	diff("retention", have.Retention, want.Retention)
	diff("storage", have.Storage, want.Storage)
	diff("max age", have.MaxAge, want.MaxAge)
	diff("replicas", max(have.Replicas, 1), max(want.Replicas, 1))
	diff("max message size", unlimited(int64(have.MaxMsgSize)), unlimited(int64(want.MaxMsgSize)))
	diff("max messages per subject", unlimited(have.MaxMsgsPerSubject), unlimited(want.MaxMsgsPerSubject))
	diff("discard policy", have.Discard, want.Discard)
	if want.Duplicates != 0 {
		diff("duplicate window", have.Duplicates, want.Duplicates)
	}
	diff("republish", fmt.Sprint(derefRepublish(have.RePublish)), fmt.Sprint(derefRepublish(want.RePublish)))
	return out
}

func derefRepublish(r *jetstream.RePublish) jetstream.RePublish {
	if r == nil {
		return jetstream.RePublish{}
	}
	return *r
}

// EnsureKeyValue creates or updates a key-value bucket, retrying as
// Ensure does (reporting to cond) until it exists or ctx ends.
func EnsureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, cond *health.Condition) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := Ensure(ctx, cond, func(ctx context.Context) error {
		var err error
		kv, err = js.CreateOrUpdateKeyValue(ctx, cfg)
		if err != nil {
			return fmt.Errorf("bucket %s: %w", cfg.Bucket, explainPlacement(js, cfg.Replicas, err))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}
