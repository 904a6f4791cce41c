package gwbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/xpeditis/notify/pkg/auth"
)

// A worker process holds a share of the clients. The coordinator drives it
// with one JSON request per line on its stdin and reads one JSON reply per
// line on its stdout; the worker logs on stderr.

type request struct {
	Op      string          `json:"op"` // connect, stats, samples, close
	Connect *ConnectRequest `json:"connect,omitempty"`
	Phase   string          `json:"phase,omitempty"`
}

type reply struct {
	Err     string        `json:"err,omitempty"`
	Connect *ConnectReply `json:"connect,omitempty"`
	Stats   *PhaseStats   `json:"stats,omitempty"`
	Samples []uint32      `json:"samples,omitempty"` // latencies in microseconds
}

// ConnectRequest asks a worker to connect one client per user.
type ConnectRequest struct {
	URLs        []string      `json:"urls"`     // client i connects to URLs[i % len(URLs)]
	Protocol    string        `json:"protocol"` // ProtocolSocketIO or ProtocolCentrifugo
	Secret      string        `json:"secret"`   // HS256 secret the worker mints tokens with
	Org         string        `json:"org"`
	Run         string        `json:"run"` // stamps of other runs are not counted
	Users       []string      `json:"users"`
	Sources     []string      `json:"sources"`
	Concurrency int           `json:"concurrency"` // handshakes in flight
	Timeout     time.Duration `json:"timeout"`     // per handshake
}

// ConnectReply is how the storm went for one worker.
type ConnectReply struct {
	Connected   int      `json:"connected"` // on the first attempt
	Failed      int      `json:"failed"`    // on the first attempt
	Retried     int      `json:"retried"`   // failed first, connected on retry
	StillFailed []string `json:"stillFailed"`
	// Start is when the first handshake began and End when the last
	// successful one of the first attempt finished (Unix nanoseconds).
	Start       int64             `json:"start"`
	End         int64             `json:"end"`
	HandshakeUs []uint32          `json:"handshakeUs"` // durations of the successful first attempts
	Errors      map[string]int    `json:"errors"`      // failures by kind
	Examples    map[string]string `json:"examples"`    // one message per kind
}

// PhaseStats counts what a worker's clients received in one phase.
type PhaseStats struct {
	Received    int64 `json:"received"`
	Duplicates  int64 `json:"duplicates"`
	Foreign     int64 `json:"foreign"` // notifications without this run's stamp
	Open        int64 `json:"open"`
	Disconnects int64 `json:"disconnects"` // connections the server ended
}

// maxSeq bounds the sequence numbers a worker accounts for, and so the size
// of its bitsets: an hour at 10,000 messages a second.
const maxSeq = 36_000_000

type phaseRecord struct {
	received, duplicates int64
	seen                 []uint64 // bitset of sequence numbers
	latencies            []uint32
}

// worker is the state of one worker process.
type worker struct {
	log *slog.Logger

	mu      sync.Mutex
	run     string
	phases  map[string]*phaseRecord
	foreign int64
	conns   []*Conn

	open        atomic.Int64
	disconnects atomic.Int64
	closing     atomic.Bool
	serving     sync.WaitGroup
}

// newWorker returns an empty worker.
func newWorker(log *slog.Logger) *worker {
	return &worker{log: log, phases: map[string]*phaseRecord{}}
}

// ServeWorker runs a worker on the coordinator's pipes until it asks the
// worker to close or in ends.
func ServeWorker(ctx context.Context, in io.Reader, out io.Writer, log *slog.Logger) error {
	w := newWorker(log)
	defer w.closeAll()
	dec := json.NewDecoder(in)
	enc := json.NewEncoder(out)
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("worker: read request: %w", err)
		}
		rep := w.handle(ctx, req)
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("worker: write reply: %w", err)
		}
		if req.Op == "close" {
			return nil
		}
	}
}

func (w *worker) handle(ctx context.Context, req request) reply {
	switch req.Op {
	case "connect":
		if req.Connect == nil {
			return reply{Err: "connect: no parameters"}
		}
		rep, err := w.connectAll(ctx, *req.Connect)
		if err != nil {
			return reply{Err: err.Error()}
		}
		return reply{Connect: rep}
	case "stats":
		return reply{Stats: w.stats(req.Phase)}
	case "samples":
		return reply{Samples: w.samples(req.Phase)}
	case "close":
		w.closeAll()
		return reply{}
	default:
		return reply{Err: fmt.Sprintf("unknown op %q", req.Op)}
	}
}

// connectAll opens one connection per user, Concurrency at a time, then
// tries the failed ones once more so that the delivery phases have every
// user they can.
func (w *worker) connectAll(ctx context.Context, r ConnectRequest) (*ConnectReply, error) {
	sources := make([]net.IP, 0, len(r.Sources))
	for _, s := range r.Sources {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("source address %q is not an IP", s)
		}
		sources = append(sources, ip)
	}
	var err error
	dialers := make([]*Dialer, len(r.URLs))
	for i, u := range r.URLs {
		if dialers[i], err = NewDialer(u, r.Protocol, sources, r.Timeout); err != nil {
			return nil, err
		}
	}
	if len(dialers) == 0 {
		return nil, errors.New("connect: no server url")
	}
	w.mu.Lock()
	w.run = r.Run
	w.mu.Unlock()

	// Tokens are minted before the storm so that the rate measures the
	// server, not the signing.
	tokens := make([]string, len(r.Users))
	for i, u := range r.Users {
		tokens[i], err = auth.Mint(r.Secret, auth.MintOptions{UserID: u, OrganizationID: r.Org, Role: "USER", TTL: 2 * time.Hour})
		if err != nil {
			return nil, fmt.Errorf("mint token: %w", err)
		}
	}

	rep := &ConnectReply{Errors: map[string]int{}, Examples: map[string]string{}}
	var mu sync.Mutex
	var end int64
	attempt := func(indexes []int) (failed []int) {
		next := make(chan int)
		var wg sync.WaitGroup
		for range max(r.Concurrency, 1) {
			wg.Go(func() {
				for i := range next {
					hctx, cancel := context.WithTimeout(ctx, r.Timeout)
					began := time.Now()
					c, err := dialers[i%len(dialers)].Connect(hctx, tokens[i])
					took := time.Since(began)
					cancel()
					mu.Lock()
					if err != nil {
						kind := errorKind(err)
						rep.Errors[kind]++
						if _, ok := rep.Examples[kind]; !ok {
							rep.Examples[kind] = err.Error()
						}
						failed = append(failed, i)
					} else {
						rep.HandshakeUs = append(rep.HandshakeUs, uint32(min(took.Microseconds(), 1<<32-1)))
						end = max(end, began.Add(took).UnixNano())
					}
					mu.Unlock()
					if err == nil {
						w.serve(c)
					}
				}
			})
		}
		for _, i := range indexes {
			select {
			case next <- i:
			case <-ctx.Done():
			}
		}
		close(next)
		wg.Wait()
		return failed
	}

	all := make([]int, len(r.Users))
	for i := range all {
		all[i] = i
	}
	rep.Start = time.Now().UnixNano()
	failed := attempt(all)
	rep.End = end
	rep.Failed = len(failed)
	rep.Connected = len(r.Users) - len(failed)
	firstHandshakes := len(rep.HandshakeUs)
	if len(failed) > 0 {
		slices.Sort(failed)
		still := attempt(failed)
		rep.Retried = len(failed) - len(still)
		for _, i := range still {
			rep.StillFailed = append(rep.StillFailed, r.Users[i])
		}
	}
	rep.HandshakeUs = rep.HandshakeUs[:firstHandshakes]
	return rep, ctx.Err()
}

// serve reads a connected client until it ends.
func (w *worker) serve(c *Conn) {
	w.mu.Lock()
	w.conns = append(w.conns, c)
	w.mu.Unlock()
	w.open.Add(1)
	w.serving.Go(func() {
		err := c.Serve(w.onEvent)
		w.open.Add(-1)
		if !w.closing.Load() {
			w.disconnects.Add(1)
			w.log.Warn("server ended a connection", "err", err)
		}
	})
}

func (w *worker) onEvent(name string, arg []byte) {
	if name != "notification" {
		return
	}
	now := time.Now().UnixNano()
	st, ok := stampOf(arg)
	w.mu.Lock()
	defer w.mu.Unlock()
	if !ok || st.Run != w.run || st.Seq > maxSeq {
		w.foreign++
		return
	}
	p := w.phases[st.Phase]
	if p == nil {
		p = &phaseRecord{}
		w.phases[st.Phase] = p
	}
	word, bit := st.Seq/64, uint64(1)<<(st.Seq%64)
	if word >= uint64(len(p.seen)) {
		p.seen = slices.Grow(p.seen, int(word)+1-len(p.seen))[:word+1]
	}
	if p.seen[word]&bit != 0 {
		p.duplicates++
		return
	}
	p.seen[word] |= bit
	p.received++
	p.latencies = append(p.latencies, uint32(min(max(now-st.SentAt, 0)/1000, 1<<32-1)))
}

func (w *worker) stats(phase string) *PhaseStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := &PhaseStats{Foreign: w.foreign, Open: w.open.Load(), Disconnects: w.disconnects.Load()}
	if p := w.phases[phase]; p != nil {
		s.Received, s.Duplicates = p.received, p.duplicates
	}
	return s
}

func (w *worker) samples(phase string) []uint32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p := w.phases[phase]; p != nil {
		return slices.Clone(p.latencies)
	}
	return nil
}

func (w *worker) closeAll() {
	w.closing.Store(true)
	w.mu.Lock()
	conns := w.conns
	w.conns = nil
	w.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	w.serving.Wait()
}

// errorKind groups handshake failures for the report.
func errorKind(err error) string {
	var ce *ConnectError
	var ne net.Error
	var closed *websocket.CloseError
	switch {
	case errors.As(err, &ce):
		return "connect_error: " + ce.Message
	case errors.As(err, &closed):
		return fmt.Sprintf("closed by server (%d)", closed.Code)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no local port left"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too many open files"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "closed by server"
	default:
		return "other"
	}
}
