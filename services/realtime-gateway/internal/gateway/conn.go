package gateway

import (
	"context"
	"errors"
	"sync"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"

	"github.com/xpeditis/notify/services/realtime-gateway/internal/hub"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/recovery"
)

// transport is how a connection reaches its client.
type transport uint8

const (
	transportPolling   transport = iota // Socket.IO over HTTP long-polling
	transportWebSocket                  // Socket.IO over WebSocket
	transportPlain                      // /ws JSON frames
)

func (t transport) String() string {
	switch t {
	case transportPolling:
		return "polling"
	case transportWebSocket:
		return "websocket"
	default:
		return "ws"
	}
}

// frameKind says how the writer sends a frame.
type frameKind uint8

const (
	frameText  frameKind = iota // a text message (an Engine.IO packet or a /ws JSON frame)
	framePing                   // a WebSocket ping control frame (/ws heartbeats)
	framePong                   // a WebSocket pong control frame (answer to the client's ping)
	frameClose                  // end of stream: a close frame, or the Engine.IO close packet when polling
)

type frame struct {
	data []byte
	kind frameKind
}

// frameOverhead is what a queued frame costs beyond its bytes: its slot in
// the queue. Counting it makes a flood of one-byte replies cost what it
// really holds.
const frameOverhead = int(unsafe.Sizeof(frame{}))

// cost is what f counts against its connection's bound.
func (f frame) cost() int { return len(f.data) + frameOverhead }

// unauthSendBuffer bounds the queue of a connection that has not
// authenticated yet: all it can be sent is protocol replies (the open
// packet, pongs, errors), a few hundred bytes at a time.
const unauthSendBuffer = 16 << 10

// maxClientPings is how many pings (Engine.IO ping packets, /ws ping
// frames, WebSocket ping control frames) a client may send within one ping
// interval. The protocols need none (the server pings); a client pinging
// faster is closed.
const maxClientPings = 8

// Reasons a connection ends, as logged and counted.
const (
	reasonClientGone     = "client_gone"
	reasonClientClose    = "client_disconnect"
	reasonPingTimeout    = "ping_timeout"
	reasonConnectTimeout = "connect_timeout"
	reasonTokenExpired   = "token_expired"
	reasonSlowClient     = "slow_client"
	reasonGap            = "resync"
	reasonShutdown       = "shutdown"
	reasonProtocol       = "protocol_error"
	reasonWriteError     = "write_error"
	reasonReplayFailed   = "replay_failed"
	reasonRefused        = "refused"
	reasonPingFlood      = "ping_flood"
)

// errClosed is returned to a replay whose connection closed.
var errClosed = errors.New("connection closed")

// conn is one client connection: a Socket.IO session (its Engine.IO
// transport and its one socket on the default namespace) or a /ws client.
//
// Nothing runs for an idle connection but its reader goroutine: frames go
// into a bounded queue and a writer goroutine exists only while the queue is
// not empty; heartbeats and deadlines live on the server's timing wheel.
//
// Everything the server sends a client, user messages and protocol replies
// alike, goes through enqueueLocked, which holds the connection to its bound
// (see roomLocked): the queued frames and the batch being written count
// until written.
type conn struct {
	srv  *Server
	id   string // Engine.IO sid, or a random id for /ws
	peer string // client address, as the pending-connection limits count it

	mu        sync.Mutex
	transport transport
	ws        *websocket.Conn // nil while polling
	queue     []frame
	queued    int           // cost of the queued frames and of the batch being written
	frames    int           // how many frames that is
	peak      int           // the most queued at once, for the metric at close
	writing   bool          // a writer goroutine is running
	pollWake  chan struct{} // polling: wakes the pending GET
	polling   bool          // polling: a GET is waiting
	posting   bool          // polling: a POST is being handled
	probe     *websocket.Conn
	room      chan struct{} // wakes a replay waiting for queue room
	closed    bool

	// heartbeat, on the wheel
	tick         int64
	pings        int       // pings from the client since pingsFrom
	pingsFrom    time.Time // start of the window maxClientPings counts in
	awaitingPong bool
	pingSentAt   time.Time
	nextPingAt   time.Time
	deadline     time.Time // CONNECT timeout, then token expiry

	// session
	unauth     bool // holds a pending-connection slot (not yet authenticated)
	connecting bool
	connected  bool
	user       string
	socketID   string
	pid        string
	start      int64 // when the session began, Unix ms
	lastSeq    uint64
	replaying  bool
	pending    []*hub.Message // live messages held while replaying
	explicit   bool           // the client disconnected on purpose: no recovery
	skipBinary int            // binary attachments still to discard
	rev        uint64         // revision of the session's record (recovery bucket)
	covered    int64          // Unix s: the token expiry that record covers
}

// newConn makes a connection holding the pending slot of peer that the
// caller acquired.
func (s *Server) newConn(id string, t transport, peer string, now time.Time) *conn {
	c := &conn{srv: s, id: id, peer: peer, unauth: true, transport: t, nextPingAt: now.Add(s.opts.PingInterval), deadline: now.Add(s.opts.ConnectTimeout)}
	if t == transportPolling {
		c.pollWake = make(chan struct{}, 1)
	}
	return c
}

// Fire runs the connection's heartbeat and deadlines (wheel.Item).
func (c *conn) Fire(now time.Time, tick int64) {
	c.mu.Lock()
	if c.closed || tick != c.tick {
		c.mu.Unlock()
		return
	}
	switch {
	case !c.deadline.IsZero() && !now.Before(c.deadline):
		connected := c.connected
		c.mu.Unlock()
		if connected {
			c.srv.expire(c)
		} else {
			c.close(reasonConnectTimeout, false)
		}
		return
	case c.awaitingPong && !now.Before(c.pingSentAt.Add(c.srv.opts.PingTimeout)):
		c.mu.Unlock()
		c.close(reasonPingTimeout, false)
		return
	case !c.awaitingPong && !now.Before(c.nextPingAt):
		c.awaitingPong, c.pingSentAt = true, now
		if c.transport == transportPlain {
			c.enqueueLocked(frame{kind: framePing})
		} else {
			c.enqueueLocked(frame{data: pingPacket})
		}
	}
	c.scheduleLocked()
	c.mu.Unlock()
}

// scheduleLocked puts the connection on the wheel at its next due time.
func (c *conn) scheduleLocked() {
	next := c.nextPingAt
	if c.awaitingPong {
		next = c.pingSentAt.Add(c.srv.opts.PingTimeout)
	}
	if !c.deadline.IsZero() && c.deadline.Before(next) {
		next = c.deadline
	}
	c.tick = c.srv.wheel.Schedule(c, next)
}

// pong records a heartbeat answer.
func (c *conn) pong(now time.Time) {
	c.mu.Lock()
	if c.awaitingPong {
		c.awaitingPong = false
		c.nextPingAt = now.Add(c.srv.opts.PingInterval)
	}
	c.mu.Unlock()
}

// send queues a protocol reply.
func (c *conn) send(data []byte) {
	c.mu.Lock()
	c.enqueueLocked(frame{data: data})
	c.mu.Unlock()
}

// clientPing answers a ping from the client with reply, or closes a client
// that pings more than maxClientPings times within a ping interval.
func (c *conn) clientPing(now time.Time, reply frame) {
	c.mu.Lock()
	if now.Sub(c.pingsFrom) >= c.srv.opts.PingInterval {
		c.pings, c.pingsFrom = 0, now
	}
	c.pings++
	if c.pings > maxClientPings {
		c.mu.Unlock()
		c.close(reasonPingFlood, false)
		return
	}
	c.enqueueLocked(reply)
	c.mu.Unlock()
}

// answerPings routes the WebSocket ping control frames of ws through
// clientPing: their pongs are queued like any reply instead of being
// written from the reader.
func (c *conn) answerPings(ws *websocket.Conn) {
	ws.SetPingHandler(func(data string) error {
		c.clientPing(time.Now(), frame{data: []byte(data), kind: framePong})
		return nil
	})
}

// enqueueLocked queues f and makes sure something will write it. It is the
// only way into the queue, so the bound holds for every kind of frame: one
// that does not fit cuts the connection as a slow client instead, and
// enqueueLocked reports false (also when the connection is closed).
func (c *conn) enqueueLocked(f frame) bool {
	if c.closed && f.kind != frameClose {
		return false
	}
	n := f.cost()
	if f.kind != frameClose && !c.roomLocked(n) {
		c.abortLocked(reasonSlowClient)
		return false
	}
	c.queue = append(c.queue, f)
	c.queued += n
	c.frames++
	c.peak = max(c.peak, c.queued)
	c.kickLocked()
	return true
}

// roomLocked reports whether a frame costing n fits: at most SendQueue
// frames and SendBuffer bytes (unauthSendBuffer before the client
// authenticates), counting the batch being written. An empty queue takes
// any one frame, so that no message is too large to ever be sent.
func (c *conn) roomLocked(n int) bool { return c.roomInLocked(n, 1) }

// roomInLocked is roomLocked within 1/share of the bound.
func (c *conn) roomInLocked(n, share int) bool {
	if c.frames == 0 {
		return true
	}
	limit := c.srv.opts.SendBuffer
	if !c.connected {
		limit = min(limit, unauthSendBuffer)
	}
	return c.frames < c.srv.opts.SendQueue/share && c.queued+n <= limit/share
}

// releaseLocked uncounts a batch once written (or abandoned) and wakes a
// replay waiting for room.
func (c *conn) releaseLocked(batch []frame) {
	if len(batch) == 0 {
		return
	}
	for _, f := range batch {
		c.queued -= f.cost()
	}
	c.frames -= len(batch)
	if c.room != nil {
		select {
		case c.room <- struct{}{}:
		default:
		}
	}
}

func (c *conn) kickLocked() {
	switch {
	case c.transport == transportPolling:
		select {
		case c.pollWake <- struct{}{}:
		default:
		}
	case !c.writing && c.ws != nil && len(c.queue) > 0:
		c.writing = true
		c.srv.writers.Add(1)
		go c.writeLoop()
	}
}

// Deliver queues a live user message (hub.Sink). Called by the hub's
// dispatcher: it never blocks, and a client that cannot keep up is closed.
func (c *conn) Deliver(m *hub.Message) {
	c.mu.Lock()
	if c.closed || !c.connecting && !c.connected || m.Seq <= c.lastSeq {
		c.mu.Unlock()
		return
	}
	if c.replaying {
		if len(c.pending) >= c.srv.opts.SendQueue {
			c.mu.Unlock()
			c.close(reasonSlowClient, false)
			return
		}
		c.pending = append(c.pending, m)
		c.mu.Unlock()
		return
	}
	reason := c.pushLocked(m)
	c.mu.Unlock()
	if reason != "" {
		c.close(reason, false)
	}
}

// pushLocked queues m in order and returns why the connection must close
// instead, if it must.
func (c *conn) pushLocked(m *hub.Message) string {
	if m.Seq <= c.lastSeq {
		return ""
	}
	if c.lastSeq != 0 && m.Last > c.lastSeq {
		// A message of this user never reached us (the live subscription
		// lost it): reconnecting makes the client recover it from the stream.
		return reasonGap
	}
	if !m.Skipped() {
		if !c.enqueueLocked(frame{data: c.frameOf(m)}) {
			return "" // closed, as a slow client if the message did not fit
		}
		c.srv.metrics.sent.WithLabelValues(c.transport.String()).Inc()
	}
	c.lastSeq = m.Seq
	return ""
}

func (c *conn) frameOf(m *hub.Message) []byte {
	if c.transport == transportPlain {
		return m.Plain()
	}
	return m.SocketIO
}

// deliverReplay queues a replayed message, waiting for room in the queue: a
// replay follows the client's pace instead of overflowing it. It fills half
// the bound at most, so that heartbeats and replies always fit beside it.
func (c *conn) deliverReplay(ctx context.Context, m *hub.Message) error {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return errClosed
		}
		if m.Skipped() || c.roomInLocked(frame{data: c.frameOf(m)}.cost(), 2) {
			reason := c.pushLocked(m)
			c.mu.Unlock()
			if reason != "" {
				c.close(reason, false)
				return errClosed
			}
			return nil
		}
		if c.room == nil {
			c.room = make(chan struct{}, 1)
		}
		room := c.room
		c.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// finishReplay sends the live messages held during the replay and goes live.
func (c *conn) finishReplay() {
	c.mu.Lock()
	reason := ""
	for _, m := range c.pending {
		if reason = c.pushLocked(m); reason != "" || c.closed {
			break
		}
	}
	c.pending, c.replaying, c.room = nil, false, nil
	c.mu.Unlock()
	if reason != "" {
		c.close(reason, false)
	}
}

// takeLocked removes and returns the queued frames; they count against the
// bound until released.
func (c *conn) takeLocked() []frame {
	q := c.queue
	c.queue = nil
	return q
}

// dropQueueLocked discards the frames nobody will write.
func (c *conn) dropQueueLocked() {
	c.releaseLocked(c.takeLocked())
}

// writeLoop writes queued frames to the WebSocket and exits when the queue
// is empty.
func (c *conn) writeLoop() {
	defer c.srv.writers.Done()
	var batch []frame
	for {
		c.mu.Lock()
		c.releaseLocked(batch)
		ws := c.ws
		if len(c.queue) == 0 || ws == nil {
			c.writing = false
			c.mu.Unlock()
			return
		}
		batch = c.takeLocked()
		c.mu.Unlock()
		for _, f := range batch {
			if err := c.writeFrame(ws, f); err != nil || f.kind == frameClose {
				_ = ws.Close()
				c.mu.Lock()
				c.writing = false
				c.releaseLocked(batch)
				c.dropQueueLocked()
				c.mu.Unlock()
				if err != nil {
					c.close(reasonWriteError, false)
				}
				return
			}
		}
	}
}

func (c *conn) writeFrame(ws *websocket.Conn, f frame) error {
	deadline := time.Now().Add(c.srv.opts.WriteTimeout)
	switch f.kind {
	case framePing:
		return ws.WriteControl(websocket.PingMessage, nil, deadline)
	case framePong:
		return ws.WriteControl(websocket.PongMessage, f.data, deadline)
	case frameClose:
		return ws.WriteControl(websocket.CloseMessage, f.data, deadline)
	default:
		if err := ws.SetWriteDeadline(deadline); err != nil {
			return err
		}
		return ws.WriteMessage(websocket.TextMessage, f.data)
	}
}

// close ends the connection. A graceful close sends what is queued and then
// a close frame (or the Engine.IO close packet) so that the client
// reconnects at once; otherwise the transport is cut.
func (c *conn) close(reason string, graceful bool) {
	c.closeWith(reason, graceful, websocket.CloseGoingAway, reason)
}

func (c *conn) closeWith(reason string, graceful bool, code int, text string) {
	c.mu.Lock()
	shut := c.shutLocked(graceful, code, text)
	c.mu.Unlock()
	if shut {
		c.srv.forget(c, reason)
	}
}

// abortLocked cuts the connection from under its lock (a frame that did not
// fit); the rest of the close takes the lock, so it runs on its own
// goroutine.
func (c *conn) abortLocked(reason string) {
	if c.shutLocked(false, 0, "") {
		go c.srv.forget(c, reason)
	}
}

// shutLocked marks the connection closed and ends its transport, and
// reports whether it was open. A graceful close queues the close frame
// after what is queued; otherwise the queue is dropped.
func (c *conn) shutLocked(graceful bool, code int, text string) bool {
	if c.closed {
		return false
	}
	if graceful {
		if c.transport == transportPolling {
			c.enqueueLocked(frame{data: closePacket, kind: frameClose})
		} else {
			c.enqueueLocked(frame{data: websocket.FormatCloseMessage(code, text), kind: frameClose})
		}
	} else {
		c.dropQueueLocked()
	}
	c.closed = true
	switch {
	case c.transport == transportPolling:
		c.kickLocked()
	case !graceful && c.ws != nil:
		_ = c.ws.Close()
	}
	if c.probe != nil {
		_ = c.probe.Close()
	}
	if c.room != nil {
		select {
		case c.room <- struct{}{}:
		default:
		}
	}
	return true
}

// recorded notes the revision of the session's record and the token expiry
// it covers; a late answer for an older revision changes nothing.
func (c *conn) recorded(rev uint64, alive time.Time) {
	c.mu.Lock()
	if rev > c.rev {
		c.rev, c.covered = rev, alive.Unix()
	}
	c.mu.Unlock()
}

// sessionLocked is the session's record as this connection writes it.
func (c *conn) sessionLocked() recovery.Session {
	return recovery.Session{User: c.user, SID: c.socketID, Start: c.start, Conn: c.id}
}
