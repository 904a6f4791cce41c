package gateway

import (
	"time"

	"github.com/gorilla/websocket"

	"github.com/xpeditis/notify/services/realtime-gateway/internal/engineio"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/hub"
)

// transport is how a connection's frames reach its client: Engine.IO
// long-polling, Engine.IO over a WebSocket, or /ws JSON frames over a
// WebSocket. Its methods run under the connection's lock.
type transport interface {
	name() string                        // the metrics label: polling, websocket, ws
	message(m *hub.Message) []byte       // a user message as this transport sends it (encoded once per message)
	heartbeat() frame                    // the server's ping
	pingNow(c *conn) bool                // write the ping at once, without a writer goroutine, if it can
	closing(code int, text string) frame // the last frame of a graceful close
	kick(c *conn)                        // frames were queued: make sure something writes them
	shut(c *conn, graceful bool)         // the connection closed (graceful: after its queue)
}

// Engine.IO packets the server sends as they are.
var (
	pingPacket       = []byte{'0' + byte(engineio.Ping)}
	noopPacket       = []byte{'0' + byte(engineio.Noop)}
	closePacket      = []byte{'0' + byte(engineio.Close)}
	disconnectPacket = []byte("41") // Socket.IO DISCONNECT in a message packet
)

// polling is Engine.IO long-polling: the queue is written by the client's
// GETs (see conn.poll), one at a time. It also holds the WebSocket a
// session probes before it upgrades.
type polling struct {
	wake    chan struct{} // wakes the waiting GET
	waiting bool          // a GET is waiting
	posting bool          // a POST is being handled
	probe   *websocket.Conn
	probed  bool // "3probe" sent: GETs are answered at once
}

func newPolling() *polling { return &polling{wake: make(chan struct{}, 1)} }

func (p *polling) name() string                  { return "polling" }
func (p *polling) message(m *hub.Message) []byte { return m.SocketIO }
func (p *polling) heartbeat() frame              { return frame{data: pingPacket} }
func (p *polling) closing(int, string) frame     { return frame{data: closePacket, kind: frameClose} }
func (p *polling) kick(*conn)                    { p.wakeGet() }
func (p *polling) pingNow(*conn) bool            { return false }

func (p *polling) shut(*conn, bool) {
	if p.probe != nil {
		_ = p.probe.Close()
	}
	p.wakeGet()
}

func (p *polling) wakeGet() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// wsConn is what both WebSocket transports share: a writer goroutine that
// runs while the queue is not empty (conn.writeLoop).
type wsConn struct {
	ws      *websocket.Conn
	writing bool
}

func (t *wsConn) kick(c *conn) {
	if !t.writing && len(c.queue) > 0 {
		t.writing = true
		c.srv.writers.Add(1)
		go c.writeLoop(t)
	}
}

// pingNow writes an idle connection's heartbeat from the timing wheel's
// goroutine: a frame of two or three bytes into a socket whose buffer is
// all but empty. Heartbeats are most of what an idle gateway does, and
// starting a writer goroutine for each costs more than the write. It
// writes only when nothing is queued or being written (so no frame of the
// writer's is cut) and never waits: when the socket takes nothing, the ping
// goes through the queue as usual.
func (t *wsConn) pingNow(c *conn, ping []byte) bool {
	if t.writing || len(c.queue) > 0 {
		return false
	}
	switch n := tryWrite(t.ws.NetConn(), ping); {
	case n == len(ping):
		return true
	case n > 0:
		c.abortLocked(reasonWriteError) // a frame cut short: the stream is lost
		return true
	}
	return false
}

func (t *wsConn) closing(code int, text string) frame {
	return frame{data: websocket.FormatCloseMessage(code, text), kind: frameClose}
}

func (t *wsConn) shut(c *conn, graceful bool) {
	if !graceful {
		_ = t.ws.Close()
	}
}

func (t *wsConn) write(f frame, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	switch f.kind {
	case framePing:
		return t.ws.WriteControl(websocket.PingMessage, nil, deadline)
	case framePong:
		return t.ws.WriteControl(websocket.PongMessage, f.data, deadline)
	case frameClose:
		return t.ws.WriteControl(websocket.CloseMessage, f.data, deadline)
	default:
		if err := t.ws.SetWriteDeadline(deadline); err != nil {
			return err
		}
		return t.ws.WriteMessage(websocket.TextMessage, f.data)
	}
}

// engineWS is Engine.IO over a WebSocket: one packet per message.
type engineWS struct{ wsConn }

func (t *engineWS) name() string                  { return "websocket" }
func (t *engineWS) message(m *hub.Message) []byte { return m.SocketIO }
func (t *engineWS) heartbeat() frame              { return frame{data: pingPacket} }
func (t *engineWS) pingNow(c *conn) bool          { return t.wsConn.pingNow(c, engineWSPing) }

// plainWS is /ws: JSON frames, WebSocket control frames for heartbeats.
type plainWS struct{ wsConn }

func (t *plainWS) name() string                  { return "ws" }
func (t *plainWS) message(m *hub.Message) []byte { return m.Plain() }
func (t *plainWS) heartbeat() frame              { return frame{kind: framePing} }
func (t *plainWS) pingNow(c *conn) bool          { return t.wsConn.pingNow(c, plainWSPing) }

// The heartbeats as WebSocket frames from the server (unmasked, no
// compression: the upgrader does not offer it), for pingNow.
var (
	engineWSPing = []byte{0x80 | websocket.TextMessage, byte(len(pingPacket)), pingPacket[0]} // FIN, text, "2"
	plainWSPing  = []byte{0x80 | websocket.PingMessage, 0}                                    // FIN, ping, no payload
)

// transportNames are the labels of every transport, for the metrics.
var transportNames = []string{(*polling).name(nil), (*engineWS).name(nil), (*plainWS).name(nil)}
