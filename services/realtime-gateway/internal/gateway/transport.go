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
	message(m *hub.Message) frame        // a user message as this transport sends it (encoded once per message)
	heartbeat() frame                    // the server's ping
	closing(code int, text string) frame // the last frame of a graceful close
	writeNow(c *conn, f frame) int       // nothing queued: write what the socket takes of f at once, never waiting; how much went
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

func (p *polling) name() string                 { return "polling" }
func (p *polling) message(m *hub.Message) frame { return frame{data: m.SocketIO} }
func (p *polling) heartbeat() frame             { return frame{data: pingPacket} }
func (p *polling) closing(int, string) frame    { return frame{data: closePacket, kind: frameClose} }
func (p *polling) writeNow(*conn, frame) int    { return 0 } // the client's GET takes the queue
func (p *polling) kick(*conn)                   { p.wakeGet() }

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

// wsConn is what both WebSocket transports share: writes at once while
// nothing is queued (writeNow), and a writer goroutine that runs while the
// queue is not empty (conn.writeLoop).
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

// writeNow writes a whole WebSocket frame (a user message the hub framed
// once for every connection, or a heartbeat) from the caller's goroutine
// (the hub's dispatcher, the timing wheel) in one non-blocking write, when
// nothing is queued or being written so that it cannot cut into another
// frame. A socket whose buffer takes the frame is the common case, and
// starting a writer goroutine, setting a deadline and framing again cost
// more than the write itself. When the socket takes only part of it or
// nothing, the rest is queued and the writer finishes it as usual: the
// socket's write lock keeps whole writes from interleaving, and nothing
// else is written before the rest.
func (t *wsConn) writeNow(c *conn, f frame) int {
	if f.kind != frameWire || t.writing {
		return 0
	}
	return tryWrite(t.ws.NetConn(), f.data)
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
	case frameWire:
		nc := t.ws.NetConn()
		if err := nc.SetWriteDeadline(deadline); err != nil {
			return err
		}
		_, err := nc.Write(f.data)
		return err
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

func (t *engineWS) name() string                 { return "websocket" }
func (t *engineWS) message(m *hub.Message) frame { return frame{data: m.SocketIOWS, kind: frameWire} }
func (t *engineWS) heartbeat() frame             { return frame{data: engineWSPing, kind: frameWire} }

// plainWS is /ws: JSON frames, WebSocket control frames for heartbeats.
type plainWS struct{ wsConn }

func (t *plainWS) name() string                 { return "ws" }
func (t *plainWS) message(m *hub.Message) frame { return frame{data: m.PlainWS(), kind: frameWire} }
func (t *plainWS) heartbeat() frame             { return frame{data: plainWSPing, kind: frameWire} }

// The heartbeats as WebSocket frames from the server (unmasked, no
// compression: the upgrader does not offer it).
var (
	engineWSPing = []byte{0x80 | websocket.TextMessage, byte(len(pingPacket)), pingPacket[0]} // FIN, text, "2"
	plainWSPing  = []byte{0x80 | websocket.PingMessage, 0}                                    // FIN, ping, no payload
)

// transportNames are the labels of every transport, for the metrics.
var transportNames = []string{(*polling).name(nil), (*engineWS).name(nil), (*plainWS).name(nil)}
