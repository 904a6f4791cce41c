package suite

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// browsers drives the real npm socket.io-client through the gateway's
// end-to-end client (services/realtime-gateway/e2e/client.mjs): one node
// process holding every tab, each tab an io() socket that reconnects and
// recovers on its own, reporting every message it receives.
type browsers struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}

	mu   sync.Mutex
	tabs map[string]*tab
	bad  int // lines that could not be read
}

// tab is what one socket saw.
type tab struct {
	user     string
	received map[string]time.Time // event id → first arrival
	counts   map[string]int       // event id → times its notification was received
	connects []connectObs
	errors   []string // connect_error messages
}

type connectObs struct {
	at        time.Time
	recovered bool
}

// observation is one line of client.mjs.
type observation struct {
	Tab       string            `json:"tab"`
	Type      string            `json:"type"`
	Event     string            `json:"event"`
	Args      []json.RawMessage `json:"args"`
	Recovered bool              `json:"recovered"`
	Message   string            `json:"message"`
}

func startBrowsers(root string) (*browsers, error) {
	dir := filepath.Join(root, "services", "realtime-gateway", "e2e")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "socket.io-client")); err != nil {
		return nil, fmt.Errorf("socket.io-client is not installed in %s: run scripts/test-setup-gateway.sh", dir)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("the chaos suite needs Node.js 20 or later on PATH")
	}
	cmd := exec.Command(node, "client.mjs")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start node client.mjs: %w", err)
	}
	b := &browsers{cmd: cmd, stdin: stdin, done: make(chan struct{}), tabs: map[string]*tab{}}
	ready := make(chan struct{})
	go func() {
		defer close(b.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		once := sync.OnceFunc(func() { close(ready) })
		for sc.Scan() {
			b.observe(sc.Bytes(), once)
		}
	}()
	select {
	case <-ready:
		return b, nil
	case <-b.done:
		b.Close()
		return nil, fmt.Errorf("node client.mjs exited before it was ready")
	case <-time.After(20 * time.Second):
		b.Close()
		return nil, fmt.Errorf("node client.mjs not ready within 20s")
	}
}

func (b *browsers) observe(line []byte, ready func()) {
	now := time.Now()
	var o observation
	if err := json.Unmarshal(line, &o); err != nil {
		b.mu.Lock()
		b.bad++
		b.mu.Unlock()
		return
	}
	if o.Type == "ready" {
		ready()
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.tabs[o.Tab]
	if t == nil {
		return
	}
	switch o.Type {
	case "connect":
		t.connects = append(t.connects, connectObs{at: now, recovered: o.Recovered})
	case "connect_error":
		t.errors = append(t.errors, o.Message)
	case "event":
		if o.Event != "notification" || len(o.Args) == 0 {
			return
		}
		var n struct {
			EventID string `json:"eventId"`
		}
		if err := json.Unmarshal(o.Args[0], &n); err != nil {
			b.bad++
			return
		}
		t.counts[n.EventID]++
		if _, seen := t.received[n.EventID]; !seen {
			t.received[n.EventID] = now
		}
	}
}

// open starts a tab of user connected through url with the transports
// (nil: socket.io-client's default, polling then WebSocket), keeping
// cookies as a browser would.
func (b *browsers) open(name, user, url, token string, transports []string) error {
	b.mu.Lock()
	b.tabs[name] = &tab{user: user, received: map[string]time.Time{}, counts: map[string]int{}}
	b.mu.Unlock()
	cmd, _ := json.Marshal(map[string]any{"cmd": "open", "tab": name, "url": url, "token": token,
		"transports": transports, "withCredentials": true, "reconnectionDelay": 500})
	_, err := fmt.Fprintf(b.stdin, "%s\n", cmd)
	return err
}

// exited says whether the node process has ended.
func (b *browsers) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// connected says how many tabs have connected at least once.
func (b *browsers) connected() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, t := range b.tabs {
		if len(t.connects) > 0 {
			n++
		}
	}
	return n
}

// tabsOf returns the names of a user's tabs.
func (b *browsers) tabsOf(user string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for name, t := range b.tabs {
		if t.user == user {
			out = append(out, name)
		}
	}
	return out
}

// arrival returns when a tab first received an event's notification.
func (b *browsers) arrival(tabName, eventID string) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	at, ok := b.tabs[tabName].received[eventID]
	return at, ok
}

// snapshot copies every tab.
func (b *browsers) snapshot() map[string]tab {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]tab, len(b.tabs))
	for name, t := range b.tabs {
		c := tab{user: t.user, received: make(map[string]time.Time, len(t.received)), counts: make(map[string]int, len(t.counts)),
			connects: append([]connectObs(nil), t.connects...), errors: append([]string(nil), t.errors...)}
		for k, v := range t.received {
			c.received[k] = v
		}
		for k, v := range t.counts {
			c.counts[k] = v
		}
		out[name] = c
	}
	return out
}

// Close ends the node process: stdin closed (it disconnects its sockets
// and exits), killed after 3 s.
func (b *browsers) Close() {
	_ = b.stdin.Close()
	select {
	case <-b.done:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.done
	}
	_ = b.cmd.Wait()
}
