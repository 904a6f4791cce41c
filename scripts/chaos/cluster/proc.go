package cluster

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// ProcSpec says how to run one process of the cluster.
type ProcSpec struct {
	Name  string // unique in the cluster: "notification-api-1", "nats-2", "postgres"
	Path  string
	Args  []string
	Env   []string // added to a minimal environment (PATH, HOME)
	Dir   string
	Netns string // run inside this network namespace (ip netns exec)
	// Credential runs the process as another user (PostgreSQL refuses root).
	Credential *syscall.Credential
	LogPath    string
	// StopSignal ends the process at Close (SIGKILL when zero), waiting up
	// to StopWait before SIGKILL.
	StopSignal syscall.Signal
	StopWait   time.Duration
}

// Proc is a supervised process: when it exits it is started again, as
// Kubernetes restarts a container, after a pause that grows while it keeps
// failing. Exits the harness caused (Signal) are not counted as restarts.
type Proc struct {
	spec ProcSpec

	mu        sync.Mutex
	cmd       *exec.Cmd
	up        bool
	expected  bool      // the current instance's exit was asked for
	holdUntil time.Time // do not start again before this
	closed    bool
	starts    int
	exits     []Exit
	errors    []time.Time // when each ERROR log line was written (the first maxErrorTimes)
	done      chan struct{}
	wake      chan struct{}
}

// Exit is one end of an instance.
type Exit struct {
	At       time.Time
	Expected bool   // caused by the harness
	Status   string // exit status
	LastLine string // the last line the instance wrote: often why it exited
}

func newProc(spec ProcSpec) *Proc {
	return &Proc{spec: spec, done: make(chan struct{}), wake: make(chan struct{}, 1)}
}

// Name of the process.
func (p *Proc) Name() string { return p.spec.Name }

// LogPath is where its output goes.
func (p *Proc) LogPath() string { return p.spec.LogPath }

func (p *Proc) command() *exec.Cmd {
	path, args := p.spec.Path, p.spec.Args
	if p.spec.Netns != "" {
		args = append([]string{"netns", "exec", p.spec.Netns, path}, args...)
		path = "ip"
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = p.spec.Dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}, p.spec.Env...)
	// Its own process group (so that Close reaches its children), and
	// killed with the harness even when the harness itself is killed -9.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: p.spec.Credential}
	cmd.WaitDelay = 3 * time.Second
	return cmd
}

// supervise runs the process until Close.
func (p *Proc) supervise(started chan<- error) {
	defer close(p.done)
	backoff := time.Second
	for first := true; ; first = false {
		logf, err := os.OpenFile(p.spec.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			if first {
				started <- err
			}
			return
		}
		cmd := p.command()
		fmt.Fprintf(logf, "=== chaos: %s started at %s\n", p.spec.Name, time.Now().UTC().Format(time.RFC3339Nano))
		lw := &lineWriter{out: logf, onLine: p.countLine}
		cmd.Stdout, cmd.Stderr = lw, lw
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			logf.Close()
			return
		}
		err = cmd.Start()
		if err == nil {
			p.cmd, p.up, p.expected = cmd, true, false
			p.starts++
		}
		p.mu.Unlock()
		if first {
			started <- err
		}
		if err != nil {
			logf.Close()
			return
		}
		werr := cmd.Wait()
		lw.flush()
		logf.Close()

		p.mu.Lock()
		p.up = false
		exit := Exit{At: time.Now(), Expected: p.expected, Status: exitStatus(werr), LastLine: lw.lastLine()}
		p.exits = append(p.exits, exit)
		closed, hold := p.closed, p.holdUntil
		p.mu.Unlock()
		if closed {
			return
		}
		wait := time.Until(hold)
		if exit.Expected {
			backoff = time.Second
		} else {
			wait = max(wait, backoff)
			backoff = min(2*backoff, 10*time.Second)
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-p.wake:
				t.Stop()
			}
		}
	}
}

func exitStatus(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

// maxErrorTimes bounds the memory of a process that logs errors in a loop.
const maxErrorTimes = 1 << 20

func (p *Proc) countLine(line []byte) {
	if bytes.Contains(line, []byte(`"level":"ERROR"`)) {
		p.mu.Lock()
		if len(p.errors) < maxErrorTimes {
			p.errors = append(p.errors, time.Now())
		}
		p.mu.Unlock()
	}
}

// Signal sends sig to the running instance and keeps the process down for
// at least hold before it is started again. It is an expected exit.
func (p *Proc) Signal(sig syscall.Signal, hold time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.up {
		return fmt.Errorf("%s is not running", p.spec.Name)
	}
	p.expected = true
	p.holdUntil = time.Now().Add(hold)
	return p.cmd.Process.Signal(sig)
}

// Release starts a held process now.
func (p *Proc) Release() {
	p.mu.Lock()
	p.holdUntil = time.Time{}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Up says whether an instance is running.
func (p *Proc) Up() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.up
}

// Pid of the running instance, 0 when none.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.up {
		return 0
	}
	return p.cmd.Process.Pid
}

// Stats is what happened to a process so far.
type Stats struct {
	Starts int
	Exits  []Exit
	Errors []time.Time // when each ERROR log line was written
}

// Stats returns a copy of the counters.
func (p *Proc) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Starts: p.starts, Exits: append([]Exit(nil), p.exits...), Errors: append([]time.Time(nil), p.errors...)}
}

// close stops the process for good: StopSignal, then SIGKILL to its
// process group after StopWait.
func (p *Proc) close() {
	p.mu.Lock()
	p.closed = true
	var pid int
	if p.up {
		pid = p.cmd.Process.Pid
	}
	p.mu.Unlock()
	p.Release()
	if pid != 0 {
		if p.spec.StopSignal != 0 {
			_ = syscall.Kill(-pid, p.spec.StopSignal)
			select {
			case <-p.done:
				return
			case <-time.After(p.spec.StopWait):
			}
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	<-p.done
}

// lineWriter copies output to a file and hands each complete line to
// onLine. Lines longer than 64 KiB are counted in pieces.
type lineWriter struct {
	mu     sync.Mutex
	out    io.Writer
	buf    []byte
	last   []byte
	onLine func([]byte)
}

func (w *lineWriter) lastLine() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.last)
}

func (w *lineWriter) line(b []byte) {
	if len(bytes.TrimSpace(b)) > 0 {
		w.last = append(w.last[:0], b[:min(len(b), 300)]...)
	}
	w.onLine(b)
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.out.Write(b); err != nil {
		return 0, err
	}
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 {
		w.line(w.buf)
		w.buf = w.buf[:0]
	}
	return len(b), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.line(w.buf)
		w.buf = nil
	}
}
