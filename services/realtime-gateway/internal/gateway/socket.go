package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/hub"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/recovery"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/socketio"
)

// Codes in the data of a CONNECT_ERROR and of the /ws error frame.
const (
	codeInvalidToken   = "invalid_token"
	codeTooMany        = "too_many_connections"
	codeUnavailable    = "unavailable"
	codeInvalidNS      = "invalid_namespace"
	eventReauth        = "reauth"
	recoveryOpsTimeout = 5 * time.Second
	// recordSlack is how much longer than its token a session's record is
	// kept: a new token rewrites the record only when its expiry passes
	// what the record covers, so a client that refreshes its token often
	// costs at most one write a minute (a token's expiry cannot move faster
	// than the clock).
	recordSlack = time.Minute
)

// connectAuth is the CONNECT payload: the client's auth object, plus the
// pid and offset socket.io-client adds when it asks for recovery.
type connectAuth struct {
	Token  string `json:"token"`
	PID    string `json:"pid"`
	Offset string `json:"offset"`
}

// onSocketIO handles one Socket.IO packet.
func (s *Server) onSocketIO(c *conn, data []byte) {
	p, err := socketio.Decode(data)
	if err != nil {
		c.close(reasonProtocol, false)
		return
	}
	if p.Attachments > 0 {
		c.mu.Lock()
		c.skipBinary = p.Attachments
		c.mu.Unlock()
	}
	if p.Namespace != socketio.DefaultNamespace {
		if p.Type == socketio.Connect {
			s.metrics.connectErrors.WithLabelValues(codeInvalidNS).Inc()
			c.send(sioPacket(socketio.Packet{Type: socketio.ConnectError, Namespace: p.Namespace, ID: socketio.NoID,
				Data: socketio.ConnectErrorData("Invalid namespace", map[string]string{"code": codeInvalidNS})}))
		}
		return
	}
	switch p.Type {
	case socketio.Connect:
		onOwnStack(func() { s.connectSocket(c, p.Data) })
	case socketio.Disconnect:
		c.mu.Lock()
		c.explicit = true
		c.mu.Unlock()
		c.close(reasonClientClose, false)
	case socketio.Event:
		s.onEvent(c, p)
	}
}

// onOwnStack runs fn on a short-lived goroutine and waits for it. A
// connection's reader spends its life parked in a read; running the deep
// work of a connect there would leave it holding a grown stack for good.
func onOwnStack(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

func sioPacket(p socketio.Packet) []byte {
	return socketio.Append([]byte{'0' + 4}, p) // inside an Engine.IO message
}

func (s *Server) connectError(c *conn, message, code string, extra map[string]any) {
	data := map[string]any{"code": code}
	for k, v := range extra {
		data[k] = v
	}
	s.metrics.connectErrors.WithLabelValues(code).Inc()
	c.send(sioPacket(socketio.Packet{Type: socketio.ConnectError, ID: socketio.NoID, Data: socketio.ConnectErrorData(message, data)}))
}

// connectSocket authenticates a CONNECT, recovers the session when the
// client asks and the history allows, joins the user's fan-out and answers.
func (s *Server) connectSocket(c *conn, data json.RawMessage) {
	c.mu.Lock()
	busy := c.connected || c.connecting
	c.connecting = !busy
	c.mu.Unlock()
	if busy {
		return
	}
	var a connectAuth
	if len(data) > 0 {
		_ = json.Unmarshal(data, &a) // a wrong shape is a missing token
	}
	claims, err := s.verifier.Verify(a.Token)
	if err != nil {
		c.mu.Lock()
		c.connecting = false
		c.mu.Unlock()
		s.connectError(c, err.Error(), codeInvalidToken, nil)
		return
	}
	now := time.Now()
	ctx, cancel := context.WithTimeout(s.ctx, recoveryOpsTimeout)
	defer cancel()
	point, sess, recovered := s.recoverable(ctx, claims, a, now)

	c.mu.Lock()
	c.user = claims.UserID
	c.replaying = true // hold live messages until the CONNECT answer is out
	if recovered {
		c.pid, c.socketID, c.start, c.lastSeq = a.PID, sess.SID, sess.Start, point.After
	} else {
		c.pid, c.socketID, c.start = newID(), newID(), now.UnixMilli()
	}
	c.mu.Unlock()

	if err := s.hub.Join(claims.UserID, c); err != nil {
		c.mu.Lock()
		c.connecting, c.user, c.pid, c.replaying = false, "", "", false
		c.mu.Unlock()
		if errors.Is(err, hub.ErrTooManyConnections) {
			s.connectError(c, err.Error(), codeTooMany, map[string]any{"limit": s.opts.MaxConnsPerUser})
			return
		}
		// A CONNECT_ERROR would stop socket.io-client for good; closing the
		// transport makes it retry with its backoff, as for any outage.
		s.log.Error("join fan-out", "err", err)
		s.metrics.connectErrors.WithLabelValues(codeUnavailable).Inc()
		c.closeWith(reasonRefused, true, websocket.CloseTryAgainLater, "unavailable, retry")
		return
	}
	// The record is written before the client learns the pid, so that a
	// session is recoverable from the moment it exists, whatever happens
	// to this gateway afterwards.
	c.mu.Lock()
	pid, sess := c.pid, c.sessionLocked()
	c.mu.Unlock()
	alive := claims.ExpiresAt.Add(recordSlack)
	rev, perr := s.store.Put(ctx, pid, sess, alive)
	if perr != nil {
		s.saveFailed("cannot record sessions for recovery", perr)
	}
	c.recorded(rev, alive)
	reply, _ := json.Marshal(struct {
		SID string `json:"sid"`
		PID string `json:"pid"`
	}{c.socketID, c.pid})
	if !s.markJoined(c, claims, sioPacket(socketio.Packet{Type: socketio.Connect, ID: socketio.NoID, Data: reply})) {
		// Closed while joining: its end was not recorded, the record
		// being written.
		sess.Disconnected = time.Now().UnixMilli()
		s.queueSave(saveRequest{pid: pid, rev: rev, sess: sess})
		return
	}
	if recovered {
		go s.replay(c, claims.UserID, point)
	} else {
		c.finishReplay()
	}
}

// markJoined makes a connection that has joined its user's fan-out live:
// it queues the first frame (the CONNECT reply or the /ws welcome) and arms
// the token-expiry deadline. It reports false, and leaves the fan-out, when
// the connection was closed while joining (forget may have run before Join
// added it).
func (s *Server) markJoined(c *conn, claims auth.Claims, first []byte) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		s.hub.Leave(claims.UserID, c)
		return false
	}
	c.connected, c.connecting = true, false
	unauth := c.unauth
	c.unauth = false
	c.deadline = claims.ExpiresAt
	c.enqueueLocked(frame{data: first})
	c.scheduleLocked()
	c.mu.Unlock()
	if unauth {
		s.pending.release(c.peer)
	}
	return true
}

// recoverable decides whether a CONNECT that carries a pid gets its session
// back: the session is recorded and recoverable now (see recovery.Load), it
// is the same user's, and the stream still holds everything after the
// client's offset.
func (s *Server) recoverable(ctx context.Context, claims auth.Claims, a connectAuth, now time.Time) (recovery.Point, recovery.Session, bool) {
	if a.PID == "" {
		return recovery.Point{}, recovery.Session{}, false
	}
	ok := false
	var p recovery.Point
	sess, found, err := s.store.Load(ctx, a.PID, now)
	if err != nil {
		s.log.Warn("recovery lookup", "err", err)
	}
	if found && sess.User == claims.UserID {
		p.Since = time.UnixMilli(sess.Start)
		offsetOK := true
		if a.Offset != "" {
			p.After, err = strconv.ParseUint(a.Offset, 10, 64)
			offsetOK = err == nil
		}
		if offsetOK {
			ok, err = s.store.Complete(ctx, claims.UserID, p)
			if err != nil {
				s.log.Warn("recovery check", "err", err)
			}
		}
	}
	result := "miss"
	if ok {
		result = "hit"
	}
	s.metrics.recovery.WithLabelValues(result).Inc()
	return p, sess, ok
}

// replay sends what the client missed, then its held live messages.
func (s *Server) replay(c *conn, userID string, p recovery.Point) {
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	defer cancel()
	err := s.store.Replay(ctx, userID, p, func(m *hub.Message) error { return c.deliverReplay(ctx, m) })
	if err != nil {
		if !errors.Is(err, errClosed) {
			s.log.Warn("replay failed", "err", err)
			c.close(reasonReplayFailed, true)
		}
		return
	}
	c.finishReplay()
}

// onEvent handles an event from the client: only "reauth" means something.
func (s *Server) onEvent(c *conn, p socketio.Packet) {
	c.mu.Lock()
	connected := c.connected
	c.mu.Unlock()
	name, err := socketio.EventName(p.Data)
	if !connected || err != nil || name != eventReauth {
		return
	}
	args, _ := socketio.EventArgs(p.Data)
	var in struct {
		Token string `json:"token"`
	}
	if len(args) > 0 {
		_ = json.Unmarshal(args[0], &in)
	}
	result := s.reauth(c, in.Token)
	if p.ID >= 0 {
		b, _ := json.Marshal([]any{result})
		c.send(sioPacket(socketio.Packet{Type: socketio.Ack, ID: p.ID, Data: b}))
	}
}

// reauthResult answers a reauth.
type reauthResult struct {
	OK        bool       `json:"ok"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	Message   string     `json:"message,omitempty"`
}

// reauth replaces the connection's token by a newer one of the same user,
// moving the expiry deadline.
func (s *Server) reauth(c *conn, token string) reauthResult {
	claims, err := s.verifier.Verify(token)
	if err != nil {
		return reauthResult{Message: err.Error()}
	}
	c.mu.Lock()
	if claims.UserID != c.user {
		c.mu.Unlock()
		return reauthResult{Message: "the token is for another user"}
	}
	c.deadline = claims.ExpiresAt
	c.scheduleLocked()
	var refresh *saveRequest
	if c.pid != "" && claims.ExpiresAt.Unix() > c.covered {
		// The session now lasts longer than its record covers.
		alive := claims.ExpiresAt.Add(recordSlack)
		refresh = &saveRequest{c: c, pid: c.pid, rev: c.rev, sess: c.sessionLocked(), alive: alive}
		c.covered = alive.Unix() // one refresh in flight is enough
	}
	c.mu.Unlock()
	if refresh != nil {
		s.queueSave(*refresh)
	}
	exp := claims.ExpiresAt.UTC()
	return reauthResult{OK: true, ExpiresAt: &exp}
}
