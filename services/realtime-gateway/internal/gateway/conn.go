// Package gateway is the realtime gateway's connection layer: the Socket.IO
// v4 server protocol (Engine.IO 4 over long-polling and WebSocket, Socket.IO
// 5 on the default namespace) at /socket.io/, plain WebSocket JSON frames at
// /ws, authentication, limits, recovery and graceful shutdown. The hub brings
// the messages, the recovery store the history.
//
// # A connection's life
//
// One type, conn (this file), owns a connection's state; the HTTP handlers
// (engine.go, plain.go) and the protocol readers (socket.go, plain.go) only
// call its methods, and nothing else takes its lock. Its states:
//
//	         handshake (open)
//	               │
//	               ▼
//	┌────────── stateOpen ─────── connect timeout ───────────┐
//	│              │  ▲                                      │
//	│     connect  │  │ refused (bad token, too many)        │
//	│              ▼  │                                      │
//	│       stateConnecting ── unavailable ────────────────► │
//	│              │ join: hub joined, record written,       │
//	│              │ first frame queued                      │
//	│              ▼                                         ▼
//	│         stateJoined ─── token expired (expire) ──► stateClosed
//	│     (replaying until caught up;                        ▲
//	│      reauth moves the expiry)                          │
//	└──── client close, ping timeout, slow client, ... ──────┘
//
// The transport changes beside it (see transport.go): a Socket.IO session
// that starts on long-polling may probe a WebSocket and upgrade to it;
// sessions that start on a WebSocket, and /ws clients, keep theirs.
//
//	polling ── WebSocket "2probe" (probe) ──► probing ── "5" (upgrade) ──► websocket
//	                                              └── probe fails ──► polling
//
// Every transition is a method: open, connect (Socket.IO CONNECT or /ws
// auth; the join path is the same for both), joined, renew (reauth),
// expire, probe/upgrade, close. What the server sends, user messages and
// protocol replies alike, goes through enqueueLocked, which holds the
// connection to its bound (see roomLocked).
//
// Nothing runs for an idle connection, not even a goroutine: on Linux its
// socket waits in the process's epoll set and a message is read on a
// pooled goroutine (reader_linux.go). A frame for a connection with
// nothing queued is written by the caller in one non-blocking write, what
// the socket does not take goes into a bounded queue, and a writer
// goroutine exists only while the queue is not empty; heartbeats and
// deadlines live on the server's timing wheel.
package gateway

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/hub"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/recovery"
)

// state is where a connection is in its life (see the package doc).
type state uint8

const (
	stateOpen       state = iota // handshake done, not authenticated: holds a pending slot
	stateConnecting              // authenticating, recovering, joining the fan-out
	stateJoined                  // live (after the replay of what it missed)
	stateClosed
)

// frameKind says how the writer sends a frame.
type frameKind uint8

const (
	frameText  frameKind = iota // a text message (an Engine.IO packet or a /ws JSON frame)
	frameWire                   // a whole WebSocket frame, written to the socket as it is (user messages, heartbeats)
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

// closedByClient reports whether reason is the client's own doing: a
// long-poll still waiting then gets a noop, not a close packet.
func closedByClient(reason string) bool {
	return reason == reasonClientGone || reason == reasonClientClose
}

// errClosed is returned to a replay whose connection closed.
var errClosed = errors.New("connection closed")

// conn is one client connection: a Socket.IO session (its Engine.IO
// transport and its one socket on the default namespace) or a /ws client.
type conn struct {
	srv     *Server
	id      string  // Engine.IO sid, or a random id for /ws
	peer    string  // client address, as the pending-connection limits count it
	dialect dialect // Socket.IO or /ws: the replies of the join path

	mu     sync.Mutex
	tr     transport // replaced once, by an upgrade
	state  state
	reason string // why it closed
	queue  []frame
	queued int           // cost of the queued frames and of the batch being written
	frames int           // how many frames that is
	peak   int           // the most queued at once, for the metric at close
	room   chan struct{} // wakes a replay waiting for queue room

	// heartbeat and deadlines, on the wheel
	tick         int64
	pingsFrom    instant // start of the window maxClientPings counts in
	pingSentAt   instant
	nextPingAt   instant
	deadline     instant // CONNECT timeout, then token expiry
	pings        int32   // pings from the client since pingsFrom
	awaitingPong bool

	// session
	pendingSlot bool   // holds a pending-connection slot (not yet authenticated)
	replaying   bool   // see pending
	explicit    bool   // the client disconnected on purpose: no recovery
	skipBinary  int32  // binary attachments the client announced
	watch       uint32 // the poller's key for its socket (reader_linux.go), 0 if none
	user        string
	socketID    string
	pid         string
	start       int64 // when the session began, Unix ms
	lastSeq     uint64
	pending     []*hub.Message // live messages held while replaying
	rev         uint64         // revision of the session's record (recovery bucket)
	covered     int64          // Unix s: the token expiry that record covers
}

// open is the handshake: a new connection on transport t, holding the
// pending slot of peer that the caller acquired. From here on only the
// connection's methods touch it.
func (s *Server) open(id string, t transport, d dialect, peer string) *conn {
	now := time.Now()
	c := &conn{srv: s, id: id, peer: peer, dialect: d, tr: t, pendingSlot: true,
		nextPingAt: at(now.Add(s.opts.PingInterval)), deadline: at(now.Add(s.opts.ConnectTimeout))}
	s.track(c, t.name())
	c.mu.Lock()
	c.scheduleLocked()
	c.mu.Unlock()
	return c
}

// Fire runs the connection's heartbeat and deadlines (wheel.Item).
func (c *conn) Fire(t time.Time, tick int64) {
	now := at(t)
	c.mu.Lock()
	if c.state == stateClosed || tick != c.tick {
		c.mu.Unlock()
		return
	}
	switch {
	case c.deadline != 0 && now >= c.deadline:
		joined := c.state == stateJoined
		c.mu.Unlock()
		if joined {
			c.expire()
		} else {
			c.close(reasonConnectTimeout)
		}
		return
	case c.awaitingPong && now >= c.pingSentAt.add(c.srv.opts.PingTimeout):
		c.mu.Unlock()
		c.close(reasonPingTimeout)
		return
	case !c.awaitingPong && now >= c.nextPingAt:
		c.awaitingPong, c.pingSentAt = true, now
		c.enqueueLocked(c.tr.heartbeat())
	}
	c.scheduleLocked()
	c.mu.Unlock()
}

// scheduleLocked puts the connection on the wheel at its next due time.
func (c *conn) scheduleLocked() {
	next := c.nextPingAt
	if c.awaitingPong {
		next = c.pingSentAt.add(c.srv.opts.PingTimeout)
	}
	if c.deadline != 0 && c.deadline < next {
		next = c.deadline
	}
	c.tick = c.srv.wheel.Schedule(c, next.time())
}

// pong records a heartbeat answer.
func (c *conn) pong(now time.Time) {
	c.mu.Lock()
	if c.awaitingPong {
		c.awaitingPong = false
		c.nextPingAt = at(now.Add(c.srv.opts.PingInterval))
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
	if at(now) >= c.pingsFrom.add(c.srv.opts.PingInterval) {
		c.pings, c.pingsFrom = 0, at(now)
	}
	c.pings++
	if c.pings > maxClientPings {
		c.mu.Unlock()
		c.close(reasonPingFlood)
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

// watched notes the poller's key for the connection's socket, and reports
// false when the connection closed already (its ending has passed: the
// caller ends the watch itself).
func (c *conn) watched(key uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateClosed {
		return false
	}
	c.watch = key
	return true
}

// live reports whether the connection is still open.
func (c *conn) live() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state != stateClosed
}

// isJoined reports whether the connection is live and authenticated.
func (c *conn) isJoined() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == stateJoined
}

// instant is a point in time as nanoseconds since clockStart, read on the
// monotonic clock like time.Time's comparisons: 8 bytes where a time.Time
// takes 24, for the four a connection keeps. 0 is none.
type instant int64

// clockStart is the origin of instants.
var clockStart = time.Now()

func at(t time.Time) instant {
	if t.IsZero() {
		return 0
	}
	return instant(t.Sub(clockStart))
}

func (i instant) add(d time.Duration) instant { return i + instant(d) }
func (i instant) time() time.Time             { return clockStart.Add(time.Duration(i)) }

// ---- the send queue ----

// enqueueLocked queues f and makes sure something will write it. It is the
// only way into the queue, so the bound holds for every kind of frame: one
// that does not fit cuts the connection as a slow client instead, and
// enqueueLocked reports false (also when the connection is closed).
//
// When nothing is queued or being written, the transport first writes what
// the socket takes at once (writeNow): a user message or a heartbeat to a
// client that keeps up costs one write from the caller's goroutine, with
// no writer goroutine to start and no deadline to set. Only what the
// socket did not take is queued.
func (c *conn) enqueueLocked(f frame) bool {
	if c.state == stateClosed && f.kind != frameClose {
		return false
	}
	n := f.cost()
	if f.kind != frameClose && !c.roomLocked(n) {
		c.abortLocked(reasonSlowClient)
		return false
	}
	if c.frames == 0 {
		w := c.tr.writeNow(c, f)
		if w == len(f.data) && w > 0 {
			return true
		}
		f.data = f.data[w:] // the rest of a frame cut short goes first
		n = f.cost()
	}
	c.queue = append(c.queue, f)
	c.queued += n
	c.frames++
	c.peak = max(c.peak, c.queued)
	c.tr.kick(c)
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
	if c.state != stateJoined {
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
	c.wakeReplayLocked()
}

func (c *conn) wakeReplayLocked() {
	if c.room != nil {
		select {
		case c.room <- struct{}{}:
		default:
		}
	}
}

// takeLocked removes and returns the queued frames; they count against the
// bound until released.
func (c *conn) takeLocked() []frame {
	q := c.queue
	c.queue = nil
	return q
}

// release uncounts a batch a transport has written.
func (c *conn) release(batch []frame) {
	c.mu.Lock()
	c.releaseLocked(batch)
	c.mu.Unlock()
}

// writeLoop writes queued frames to a WebSocket transport and exits when
// the queue is empty (see wsConn.kick).
func (c *conn) writeLoop(t *wsConn) {
	defer c.srv.writers.Done()
	var batch []frame
	for {
		c.mu.Lock()
		c.releaseLocked(batch)
		if len(c.queue) == 0 {
			t.writing = false
			c.mu.Unlock()
			return
		}
		batch = c.takeLocked()
		c.mu.Unlock()
		for _, f := range batch {
			if err := t.write(f, c.srv.opts.WriteTimeout); err != nil || f.kind == frameClose {
				_ = t.ws.Close()
				c.mu.Lock()
				t.writing = false
				c.releaseLocked(batch)
				c.releaseLocked(c.takeLocked())
				c.mu.Unlock()
				if err != nil {
					c.close(reasonWriteError)
				}
				return
			}
		}
	}
}

// ---- user messages ----

// Deliver queues a live user message (hub.Sink). Called by the hub's
// dispatcher: it never blocks, and a client that cannot keep up is closed.
func (c *conn) Deliver(m *hub.Message) {
	c.mu.Lock()
	if c.state != stateConnecting && c.state != stateJoined || m.Seq <= c.lastSeq {
		c.mu.Unlock()
		return
	}
	if c.replaying {
		if len(c.pending) >= c.srv.opts.SendQueue {
			c.mu.Unlock()
			c.close(reasonSlowClient)
			return
		}
		c.pending = append(c.pending, m)
		c.mu.Unlock()
		return
	}
	reason := c.pushLocked(m)
	c.mu.Unlock()
	if reason != "" {
		c.close(reason)
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
		if !c.enqueueLocked(c.tr.message(m)) {
			return "" // closed, as a slow client if the message did not fit
		}
		c.srv.metrics.sentOn(c.tr.name()).Inc()
	}
	c.lastSeq = m.Seq
	return ""
}

// deliverReplay queues a replayed message, waiting for room in the queue: a
// replay follows the client's pace instead of overflowing it. It fills half
// the bound at most, so that heartbeats and replies always fit beside it.
func (c *conn) deliverReplay(ctx context.Context, m *hub.Message) error {
	for {
		c.mu.Lock()
		if c.state == stateClosed {
			c.mu.Unlock()
			return errClosed
		}
		if m.Skipped() || c.roomInLocked(c.tr.message(m).cost(), 2) {
			reason := c.pushLocked(m)
			c.mu.Unlock()
			if reason != "" {
				c.close(reason)
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

// replay sends what the client missed after p, then its held live
// messages.
func (c *conn) replay(p recovery.Point) {
	s := c.srv
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	defer cancel()
	c.mu.Lock()
	user := c.user
	c.mu.Unlock()
	err := s.store.Replay(ctx, user, p, func(m *hub.Message) error { return c.deliverReplay(ctx, m) })
	if err != nil {
		if !errors.Is(err, errClosed) {
			s.log.Warn("replay failed", "err", err)
			c.closeGracefully(reasonReplayFailed, websocket.CloseGoingAway, reasonReplayFailed)
		}
		return
	}
	c.finishReplay()
}

// finishReplay sends the live messages held during the replay and goes live.
func (c *conn) finishReplay() {
	c.mu.Lock()
	reason := ""
	for _, m := range c.pending {
		if reason = c.pushLocked(m); reason != "" || c.state == stateClosed {
			break
		}
	}
	c.pending, c.replaying, c.room = nil, false, nil
	c.mu.Unlock()
	if reason != "" {
		c.close(reason)
	}
}

// ---- connect and join: one path for Socket.IO and /ws ----

// dialect is what differs between Socket.IO and /ws along the join path:
// where the stream resumes, the first frame, and how a refusal is told.
type dialect interface {
	// resume decides where the stream of an authenticated client starts.
	resume(ctx context.Context, c *conn, claims auth.Claims, req connectRequest) (start, error)
	// welcome is the first frame of a joined connection; it may write the
	// session's record first.
	welcome(ctx context.Context, c *conn, claims auth.Claims, st start) []byte
	// refuse tells the client that it cannot connect (code as in the
	// metrics) and closes the connection if the protocol wants it closed.
	refuse(c *conn, code, message string, extra map[string]any)
	// expired ends a connection whose token expired.
	expired(c *conn)
}

// connectRequest is what a client sends to connect: its token and, to
// resume, the Socket.IO pid and offset or the /ws offset.
type connectRequest struct {
	token  string
	pid    string
	offset string
	since  *uint64
}

// start is where a joining connection's stream begins.
type start struct {
	point  recovery.Point // resume after point.After
	asked  bool           // the client asked to resume
	hit    bool           // and the history holds everything it missed
	replay bool           // replay the stream after point
}

// Codes in the data of a CONNECT_ERROR and of the /ws error frame.
const (
	codeInvalidToken   = "invalid_token"
	codeTooMany        = "too_many_connections"
	codeUnavailable    = "unavailable"
	codeInvalidNS      = "invalid_namespace"
	recoveryOpsTimeout = 5 * time.Second
	// recordSlack is how much longer than its token a session's record is
	// kept: a new token rewrites the record only when its expiry passes
	// what the record covers, so a client that refreshes its token often
	// costs at most one write a minute (a token's expiry cannot move faster
	// than the clock).
	recordSlack = time.Minute
)

// connect is the join path, the same for a Socket.IO CONNECT and the /ws
// auth: authenticate, decide where the stream resumes, join the user's
// fan-out, send the first frame and go live, then replay what the client
// missed. A second connect on a connection that has one closes it, as the
// reference Socket.IO server does.
func (c *conn) connect(req connectRequest) {
	s := c.srv
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		c.close(reasonProtocol)
		return
	}
	c.state = stateConnecting
	c.mu.Unlock()

	claims, err := s.verifier.Verify(req.token)
	if err != nil {
		c.refuse(codeInvalidToken, err.Error(), nil)
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, recoveryOpsTimeout)
	defer cancel()
	st, err := c.dialect.resume(ctx, c, claims, req)
	if st.asked {
		result := "miss"
		if st.hit {
			result = "hit"
		}
		s.metrics.recovery.WithLabelValues(result).Inc()
	}
	if err != nil {
		s.log.Error("read latest offset", "err", err)
		c.refuse(codeUnavailable, "the gateway cannot read the stream right now; retry", nil)
		return
	}
	c.mu.Lock()
	c.user, c.lastSeq = claims.UserID, st.point.After
	c.replaying = true // hold live messages until the first frame is out
	c.mu.Unlock()
	if err := s.hub.Join(claims.UserID, c); err != nil {
		if errors.Is(err, hub.ErrTooManyConnections) {
			c.refuse(codeTooMany, err.Error(), map[string]any{"limit": s.opts.MaxConnsPerUser})
			return
		}
		s.log.Error("join fan-out", "err", err)
		c.refuse(codeUnavailable, "the gateway cannot subscribe right now; retry", nil)
		return
	}
	if !c.joined(claims, c.dialect.welcome(ctx, c, claims, st)) {
		return
	}
	if st.replay {
		go c.replay(st.point)
	} else {
		c.finishReplay()
	}
}

// refuse puts a connection whose connect failed back in stateOpen (the
// dialect may close it) and counts the refusal.
func (c *conn) refuse(code, message string, extra map[string]any) {
	c.mu.Lock()
	if c.state == stateConnecting {
		c.state = stateOpen
	}
	c.user, c.pid, c.socketID, c.replaying, c.lastSeq, c.pending = "", "", "", false, 0, nil
	c.mu.Unlock()
	c.srv.metrics.connectErrors.WithLabelValues(code).Inc()
	c.dialect.refuse(c, code, message, extra)
}

// startSession sets the Socket.IO session the connection carries: the one
// recovered, or a new one.
func (c *conn) startSession(pid, socketID string, start int64) {
	c.mu.Lock()
	c.pid, c.socketID, c.start = pid, socketID, start
	c.mu.Unlock()
}

// session is the session's record as this connection writes it.
func (c *conn) session() (string, recovery.Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pid, c.sessionLocked()
}

func (c *conn) sessionLocked() recovery.Session {
	return recovery.Session{User: c.user, SID: c.socketID, Start: c.start, Conn: c.id}
}

// joined makes a connection that has joined its user's fan-out live: it
// queues the first frame and arms the token-expiry deadline. It reports
// false, and leaves the fan-out, when the connection was closed while
// joining (its end was not recorded then: it is now).
func (c *conn) joined(claims auth.Claims, first []byte) bool {
	c.mu.Lock()
	if c.state == stateClosed {
		var end *saveRequest
		if c.pid != "" && c.rev != 0 {
			r := saveRequest{pid: c.pid, rev: c.rev, sess: c.sessionLocked()}
			r.sess.Disconnected = time.Now().UnixMilli()
			end = &r
		}
		c.mu.Unlock()
		c.srv.hub.Leave(claims.UserID, c)
		if end != nil {
			c.srv.queueSave(*end)
		}
		return false
	}
	c.state = stateJoined
	slot := c.pendingSlot
	c.pendingSlot = false
	c.deadline = at(claims.ExpiresAt)
	c.enqueueLocked(frame{data: first})
	c.scheduleLocked()
	c.mu.Unlock()
	if slot {
		c.srv.pending.release(c.peer)
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

// renewResult answers a reauth.
type renewResult struct {
	OK        bool       `json:"ok"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	Message   string     `json:"message,omitempty"`
}

// renew replaces the connection's token by a newer one of the same user
// (Socket.IO "reauth", /ws auth once joined), moving the expiry deadline
// and, when it outlasts what the session's record covers, the record's.
func (c *conn) renew(token string) renewResult {
	claims, err := c.srv.verifier.Verify(token)
	if err != nil {
		return renewResult{Message: err.Error()}
	}
	c.mu.Lock()
	if c.state != stateJoined || claims.UserID != c.user {
		c.mu.Unlock()
		return renewResult{Message: "the token is for another user"}
	}
	c.deadline = at(claims.ExpiresAt)
	c.scheduleLocked()
	var refresh *saveRequest
	if c.pid != "" && claims.ExpiresAt.Unix() > c.covered {
		alive := claims.ExpiresAt.Add(recordSlack)
		refresh = &saveRequest{c: c, pid: c.pid, rev: c.rev, sess: c.sessionLocked(), alive: alive}
		c.covered = alive.Unix() // one refresh in flight is enough
	}
	c.mu.Unlock()
	if refresh != nil {
		c.srv.queueSave(*refresh)
	}
	exp := claims.ExpiresAt.UTC()
	return renewResult{OK: true, ExpiresAt: &exp}
}

// expire ends a connection whose token expired without a reauth.
func (c *conn) expire() { c.dialect.expired(c) }

// disconnected marks a client that left on purpose (Socket.IO DISCONNECT):
// its session is not kept for recovery.
func (c *conn) disconnected() {
	c.mu.Lock()
	c.explicit = true
	c.mu.Unlock()
	c.close(reasonClientClose)
}

// expectBinary notes the binary attachments a Socket.IO packet announced.
func (c *conn) expectBinary(n int) {
	c.mu.Lock()
	c.skipBinary = int32(min(n, math.MaxInt32))
	c.mu.Unlock()
}

// binaryFrame takes a binary frame from the client: an announced
// attachment (dropped: the gateway takes no binary events), or else a
// protocol error that closes the connection. It reports whether the
// connection is still open.
func (c *conn) binaryFrame() bool {
	c.mu.Lock()
	if c.skipBinary > 0 {
		c.skipBinary--
		c.mu.Unlock()
		return true
	}
	c.mu.Unlock()
	c.close(reasonProtocol)
	return false
}

// ---- long-polling ----

// pollResult is what a long-polling GET is answered with.
type pollResult uint8

const (
	pollFrames   pollResult = iota // the frames returned (closing after them when the connection is closed)
	pollNoop                       // a noop: the session moves on (upgrade, or the client closed it)
	pollRefused                    // 400: not polling, or a second GET
	pollCanceled                   // the request ended while waiting
)

// poll waits, up to the request's end, for something to answer a
// long-polling GET with. During an upgrade probe it answers at once (a noop
// when nothing is queued) so that the client can pause polling and
// upgrade; a second GET while one waits closes the session.
func (c *conn) poll(ctx context.Context) ([]frame, pollResult) {
	c.mu.Lock()
	p, ok := c.tr.(*polling)
	if !ok {
		c.mu.Unlock()
		return nil, pollRefused
	}
	if p.waiting {
		c.mu.Unlock()
		c.close(reasonProtocol)
		return nil, pollRefused
	}
	for len(c.queue) == 0 && c.state != stateClosed && c.tr == p && !p.probed {
		p.waiting = true
		c.mu.Unlock()
		select {
		case <-p.wake:
		case <-ctx.Done():
			c.mu.Lock()
			p.waiting = false
			c.mu.Unlock()
			return nil, pollCanceled
		}
		c.mu.Lock()
		p.waiting = false
	}
	defer c.mu.Unlock()
	switch {
	case c.tr != p:
		return nil, pollNoop // upgraded while waiting: the client reads the WebSocket now
	case c.state == stateClosed && len(c.queue) == 0 && closedByClient(c.reason):
		return nil, pollNoop
	case c.state == stateClosed:
		batch := c.takeLocked()
		if len(batch) == 0 || batch[len(batch)-1].kind != frameClose {
			batch = append(batch, frame{data: closePacket, kind: frameClose}) // the client reconnects
		}
		return batch, pollFrames
	case len(c.queue) == 0:
		return nil, pollNoop // probing
	}
	return c.takeLocked(), pollFrames
}

// beginPost admits a long-polling POST: false when the session is not
// polling or a POST is already being handled (which closes it). A closed
// session's POST is taken and ignored (closed true): the next poll brings
// the close packet, and an error here would reach the client first.
func (c *conn) beginPost() (ok, closed bool) {
	c.mu.Lock()
	p, polling := c.tr.(*polling)
	switch {
	case polling && c.state == stateClosed:
		c.mu.Unlock()
		return false, true
	case !polling || c.state == stateClosed:
		c.mu.Unlock()
		return false, false
	case p.posting:
		c.mu.Unlock()
		c.close(reasonProtocol)
		return false, false
	}
	p.posting = true
	c.mu.Unlock()
	return true, false
}

// endPost ends what beginPost admitted.
func (c *conn) endPost() {
	c.mu.Lock()
	if p, ok := c.tr.(*polling); ok {
		p.posting = false
	}
	c.mu.Unlock()
}

// ---- upgrade ----

// beginProbe takes ws as the session's upgrade probe. It reports false
// when the session cannot upgrade to it (already upgrading or upgraded, or
// closed): the caller closes ws, as the reference server closes a second
// WebSocket after accepting it.
func (c *conn) beginProbe(ws *websocket.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.tr.(*polling)
	if !ok || p.probe != nil || c.state == stateClosed {
		return false
	}
	p.probe = ws
	return true
}

// probed notes that the probe was answered ("3probe"): from now on a
// long-poll is answered at once, so that the client, which waits for its
// pending poll before it upgrades, upgrades without waiting for a packet.
func (c *conn) probed() {
	c.mu.Lock()
	if p, ok := c.tr.(*polling); ok {
		p.probed = true
		p.wakeGet()
	}
	c.mu.Unlock()
}

// abandonProbe forgets a probe that failed; the session stays on polling.
func (c *conn) abandonProbe(ws *websocket.Conn) {
	c.mu.Lock()
	if p, ok := c.tr.(*polling); ok && p.probe == ws {
		p.probe, p.probed = nil, false
	}
	c.mu.Unlock()
	_ = ws.Close()
}

// upgrade moves the session to the probed WebSocket ws: the queue goes on
// there, a pending long-poll is answered with a noop. It reports false when
// the session closed meanwhile.
func (c *conn) upgrade(ws *websocket.Conn) bool {
	c.mu.Lock()
	p, ok := c.tr.(*polling)
	if !ok || p.probe != ws || c.state == stateClosed {
		c.mu.Unlock()
		_ = ws.Close()
		return false
	}
	c.tr = &engineWS{wsConn{ws: ws}}
	p.probe = nil
	p.wakeGet()
	c.answerPings(ws)
	c.tr.kick(c)
	c.mu.Unlock()
	m := c.srv.metrics
	m.connections.WithLabelValues(p.name()).Dec()
	m.connections.WithLabelValues(c.tr.name()).Inc()
	m.upgrades.Inc()
	return true
}

// ---- close ----

// close cuts the connection: what is queued is dropped.
func (c *conn) close(reason string) {
	c.mu.Lock()
	end, ok := c.shutLocked(reason, nil)
	c.mu.Unlock()
	if ok {
		c.srv.forget(c, end)
	}
}

// closeGracefully ends the connection after what is queued, with a close
// frame (code and text on a WebSocket, the Engine.IO close packet when
// polling) so that the client reconnects at once.
func (c *conn) closeGracefully(reason string, code int, text string) {
	c.mu.Lock()
	last := c.tr.closing(code, text)
	end, ok := c.shutLocked(reason, &last)
	c.mu.Unlock()
	if ok {
		c.srv.forget(c, end)
	}
}

// abortLocked cuts the connection from under its lock (a frame that did not
// fit); the rest of the close takes other locks, so it runs on its own
// goroutine.
func (c *conn) abortLocked(reason string) {
	if end, ok := c.shutLocked(reason, nil); ok {
		go c.srv.forget(c, end)
	}
}

// ending is what the server does once a connection closed (see forget).
type ending struct {
	reason    string
	transport string
	user      string       // the fan-out to leave ("" if it never joined)
	save      *saveRequest // the session's end to record
	peak      int          // the most it had queued
	slot      bool         // it still held a pending slot
	watch     uint32       // the poller's watch to end
}

// shutLocked marks the connection closed and ends its transport, and
// reports whether it was open. With a last frame (a graceful close) it
// queues last after what is queued; otherwise the queue is dropped.
func (c *conn) shutLocked(reason string, last *frame) (ending, bool) {
	if c.state == stateClosed {
		return ending{}, false
	}
	if last != nil {
		c.enqueueLocked(*last)
	} else {
		c.releaseLocked(c.takeLocked())
	}
	joinedOrJoining := c.state == stateJoined || c.state == stateConnecting
	end := ending{reason: reason, transport: c.tr.name(), peak: c.peak, slot: c.pendingSlot, watch: c.watch}
	if joinedOrJoining {
		end.user = c.user
	}
	// A shutdown's closes record nothing (see saver.go).
	if c.state == stateJoined && c.pid != "" && reason != reasonShutdown {
		r := saveRequest{pid: c.pid, rev: c.rev, sess: c.sessionLocked()}
		if c.explicit {
			r.sess.Ended = true
		} else {
			r.sess.Disconnected = time.Now().UnixMilli()
		}
		end.save = &r
	}
	c.state, c.reason, c.pendingSlot = stateClosed, reason, false
	c.tr.shut(c, last != nil)
	c.wakeReplayLocked()
	return end, true
}
