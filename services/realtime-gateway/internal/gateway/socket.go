package gateway

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/socketio"
)

// eventReauth is the one event a Socket.IO client sends: a newer token.
const eventReauth = "reauth"

// connectAuth is the CONNECT payload: the client's auth object, plus the
// pid and offset socket.io-client adds when it asks for recovery.
type connectAuth struct {
	Token  string `json:"token"`
	PID    string `json:"pid"`
	Offset string `json:"offset"`
}

// onSocketIO handles one Socket.IO packet. As in the reference server, a
// packet for a namespace the client has no socket on (anything but a
// CONNECT before it connected, or on another namespace) and a second
// CONNECT close the session; a CONNECT to another namespace is refused.
func (s *Server) onSocketIO(c *conn, data []byte) {
	p, err := socketio.Decode(data)
	if err != nil {
		c.close(reasonProtocol)
		return
	}
	if p.Attachments > 0 {
		c.expectBinary(p.Attachments)
	}
	if p.Namespace != socketio.DefaultNamespace {
		if p.Type != socketio.Connect {
			c.close(reasonProtocol)
			return
		}
		s.metrics.connectErrors.WithLabelValues(codeInvalidNS).Inc()
		c.send(sioPacket(socketio.Packet{Type: socketio.ConnectError, Namespace: p.Namespace, ID: socketio.NoID,
			Data: socketio.ConnectErrorData("Invalid namespace", map[string]string{"code": codeInvalidNS})}))
		return
	}
	switch p.Type {
	case socketio.Connect:
		var a connectAuth
		if len(p.Data) > 0 {
			_ = json.Unmarshal(p.Data, &a) // a wrong shape is a missing token
		}
		// A WebSocket's messages are handled on a pooled stack (see
		// readMessages), a polling POST on its request's goroutine: neither
		// is the stack an idle connection parks on.
		c.connect(connectRequest{token: a.Token, pid: a.PID, offset: a.Offset})
	case socketio.Disconnect:
		c.disconnected()
	case socketio.Event, socketio.BinaryEvent, socketio.Ack, socketio.BinaryAck:
		if !c.isJoined() {
			c.close(reasonProtocol)
			return
		}
		if p.Type == socketio.Event {
			onEvent(c, p)
		}
	default: // CONNECT_ERROR is the server's
		c.close(reasonProtocol)
	}
}

func sioPacket(p socketio.Packet) []byte {
	return socketio.Append([]byte{'0' + 4}, p) // inside an Engine.IO message
}

// onEvent handles an event from the client: only "reauth" means something.
func onEvent(c *conn, p socketio.Packet) {
	name, err := socketio.EventName(p.Data)
	if err != nil || name != eventReauth {
		return
	}
	args, _ := socketio.EventArgs(p.Data)
	var in struct {
		Token string `json:"token"`
	}
	if len(args) > 0 {
		_ = json.Unmarshal(args[0], &in)
	}
	result := c.renew(in.Token)
	if p.ID >= 0 {
		b, _ := json.Marshal([]any{result})
		c.send(sioPacket(socketio.Packet{Type: socketio.Ack, ID: p.ID, Data: b}))
	}
}

// socketIO is the Socket.IO dialect of the join path: sessions with a pid
// that socket.io-client recovers, recorded in the recovery bucket.
type socketIO struct{}

// resume recovers the session when the client asks (its pid and offset)
// and it can be: the session is recorded and recoverable now (see
// recovery.Load), it is the same user's, and the stream still holds
// everything after the offset. Otherwise the client gets a new session.
func (socketIO) resume(ctx context.Context, c *conn, claims auth.Claims, req connectRequest) (start, error) {
	s := c.srv
	if req.pid != "" {
		st := start{asked: true}
		sess, found, err := s.store.Load(ctx, req.pid, time.Now())
		if err != nil {
			s.log.Warn("recovery lookup", "err", err)
		}
		if found && sess.User == claims.UserID {
			st.point.Since = time.UnixMilli(sess.Start)
			offsetOK := true
			if req.offset != "" {
				st.point.After, err = strconv.ParseUint(req.offset, 10, 64)
				offsetOK = err == nil
			}
			if offsetOK {
				st.hit, err = s.store.Complete(ctx, claims.UserID, st.point)
				if err != nil {
					s.log.Warn("recovery check", "err", err)
				}
			}
		}
		if st.hit {
			st.replay = true
			c.startSession(req.pid, sess.SID, sess.Start)
			return st, nil
		}
	}
	c.startSession(newID(), newID(), time.Now().UnixMilli())
	return start{asked: req.pid != ""}, nil
}

// welcome records the session before the client learns its pid, so that
// it is recoverable from the moment it exists whatever happens to this
// gateway afterwards, and answers the CONNECT.
func (socketIO) welcome(ctx context.Context, c *conn, claims auth.Claims, _ start) []byte {
	s := c.srv
	pid, sess := c.session()
	alive := claims.ExpiresAt.Add(recordSlack)
	rev, err := s.store.Put(ctx, pid, sess, alive)
	if err != nil {
		s.saveFailed("cannot record sessions for recovery", err)
	}
	c.recorded(rev, alive)
	reply, _ := json.Marshal(struct {
		SID string `json:"sid"`
		PID string `json:"pid"`
	}{sess.SID, pid})
	return sioPacket(socketio.Packet{Type: socketio.Connect, ID: socketio.NoID, Data: reply})
}

// refuse answers CONNECT_ERROR, which stops socket.io-client for good,
// unless the gateway is what failed: then the transport closes, and the
// client retries with its backoff as after any outage.
func (socketIO) refuse(c *conn, code, message string, extra map[string]any) {
	if code == codeUnavailable {
		c.closeGracefully(reasonRefused, websocket.CloseTryAgainLater, "unavailable, retry")
		return
	}
	data := map[string]any{"code": code}
	for k, v := range extra {
		data[k] = v
	}
	c.send(sioPacket(socketio.Packet{Type: socketio.ConnectError, ID: socketio.NoID, Data: socketio.ConnectErrorData(message, data)}))
}

// expired sends a Socket.IO DISCONNECT: the client does not reconnect on
// its own but emits "disconnect" with "io server disconnect"; it refreshes
// its token and calls socket.connect(), and the session is recovered.
func (socketIO) expired(c *conn) {
	c.send(disconnectPacket)
	c.closeGracefully(reasonTokenExpired, websocket.CloseGoingAway, reasonTokenExpired)
}
