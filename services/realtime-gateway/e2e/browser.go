// Package e2e drives the real npm socket.io-client (client.mjs in this
// directory, dependencies locked in package-lock.json and installed by
// scripts/test-setup-gateway.sh) from Go tests: the gateway's own tests and
// the whole-pipeline test of notifyd.
package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/testkit"
)

// Observation is one line printed by client.mjs.
type Observation struct {
	Tab       string            `json:"tab"`
	Type      string            `json:"type"` // ready, open, upgrade, connect, connect_error, disconnect, event, ack, done, error
	Event     string            `json:"event"`
	Args      []json.RawMessage `json:"args"`
	Recovered bool              `json:"recovered"`
	PID       string            `json:"pid"`
	Transport string            `json:"transport"`
	Message   string            `json:"message"`
	Reason    string            `json:"reason"`
	Data      json.RawMessage   `json:"data"`
	T         float64           `json:"t"` // when client.mjs saw it, ms on its monotonic clock
}

// Browser is a node process holding socket.io-client "tabs".
type Browser struct {
	t     testing.TB
	stdin io.Writer
	mu    sync.Mutex
	seen  []Observation
}

// dir is where client.mjs and its node_modules live.
func dir(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("e2e: cannot locate the client directory")
	}
	d := filepath.Dir(file)
	if _, err := os.Stat(filepath.Join(d, "node_modules", "socket.io-client")); err != nil {
		t.Fatalf("socket.io-client is not installed in %s: run scripts/test-setup-gateway.sh (make test does)", d)
	}
	return d
}

// Start runs client.mjs until cleanup.
func Start(t testing.TB) *Browser {
	t.Helper()
	b := &Browser{t: t}
	b.stdin = testkit.NodeScript(t, dir(t), "client.mjs", func(line []byte) {
		var o Observation
		if err := json.Unmarshal(line, &o); err != nil {
			return
		}
		b.mu.Lock()
		b.seen = append(b.seen, o)
		b.mu.Unlock()
	})
	b.Wait("node client ready", func(o Observation) bool { return o.Type == "ready" })
	return b
}

// Do sends a command to client.mjs: open, drop, reconnect, emit, close.
func (b *Browser) Do(cmd map[string]any) {
	b.t.Helper()
	line, _ := json.Marshal(cmd)
	if _, err := fmt.Fprintf(b.stdin, "%s\n", line); err != nil {
		b.t.Fatalf("node client: %v", err)
	}
}

// Wait returns the first observation matching match, waiting up to 20s
// (generous: node and the race detector share two cores in CI).
func (b *Browser) Wait(what string, match func(Observation) bool) Observation {
	b.t.Helper()
	var found Observation
	testkit.Eventually(b.t, 20*time.Second, what, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, o := range b.seen {
			if match(o) {
				found = o
				return true
			}
		}
		return false
	})
	return found
}

// All returns the observations matching match so far.
func (b *Browser) All(match func(Observation) bool) []Observation {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Observation
	for _, o := range b.seen {
		if match(o) {
			out = append(out, o)
		}
	}
	return out
}

// Count returns how many observations match.
func (b *Browser) Count(match func(Observation) bool) int { return len(b.All(match)) }

// Reset forgets what was seen so far.
func (b *Browser) Reset() {
	b.mu.Lock()
	b.seen = nil
	b.mu.Unlock()
}

// IsType matches the observations of one type on a tab.
func IsType(tab, typ string) func(Observation) bool {
	return func(o Observation) bool { return o.Tab == tab && o.Type == typ }
}

// IsEvent matches the events of one name on a tab.
func IsEvent(tab, event string) func(Observation) bool {
	return func(o Observation) bool { return o.Tab == tab && o.Type == "event" && o.Event == event }
}

// IDs returns the "id" field of the first argument of each event, joined
// by commas.
func IDs(obs []Observation) string {
	ids := make([]string, 0, len(obs))
	for _, o := range obs {
		var d struct {
			ID string `json:"id"`
		}
		if len(o.Args) > 0 {
			_ = json.Unmarshal(o.Args[0], &d)
		}
		ids = append(ids, d.ID)
	}
	return strings.Join(ids, ",")
}
