package gateway

import (
	"bufio"
	"net"
	"net/http"

	"github.com/gorilla/websocket"
)

// An idle connection's only goroutine is its reader, parked until the
// client sends something. Parked inside gorilla's ReadMessage it would hold
// a 4-8 KB stack; parked in waitReadable (a peek on the socket) it keeps the
// minimal 2 KB one, and each message is read on a short-lived goroutine.
// That needs to know when gorilla's read buffer is empty, so the reader
// hands gorilla a bufio.Reader of its own through the hijack.

// readBufferSize is the per-connection read buffer; client messages are
// small (pongs, CONNECT, reauth) and larger ones simply take more reads.
const readBufferSize = 512

// unauthReadLimit bounds a message from a connection that has not
// authenticated yet (a CONNECT with its token, or the /ws auth frame):
// MaxPayload, up to 1 MiB, is for authenticated clients, so that clients
// that never authenticate cannot make the gateway hold a megabyte each.
const unauthReadLimit = 16 << 10

// hijacker wraps the ResponseWriter during an upgrade so that gorilla uses
// a small bufio.Reader the gateway can inspect.
type hijacker struct {
	http.ResponseWriter
	br *bufio.Reader
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil || brw.Reader.Buffered() > 0 {
		// gorilla refuses data sent before the handshake completed.
		return conn, brw, err
	}
	h.br = bufio.NewReaderSize(conn, readBufferSize)
	return conn, bufio.NewReadWriter(h.br, brw.Writer), nil
}

// upgrade runs the WebSocket handshake and returns the connection and the
// read buffer gorilla uses (nil when it did not take ours).
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request) (*websocket.Conn, *bufio.Reader, error) {
	h := &hijacker{ResponseWriter: w}
	ws, err := s.upgrader.Upgrade(h, r, nil)
	if err != nil {
		return nil, nil, err
	}
	ws.SetReadLimit(int64(min(unauthReadLimit, s.opts.MaxPayload)))
	return ws, h.br, nil
}

// readMessages calls handle with each message of c's WebSocket ws until
// reading fails (then with the error) or handle returns false. Once c has
// joined, messages of up to MaxPayload bytes are read.
func (s *Server) readMessages(c *conn, ws *websocket.Conn, br *bufio.Reader, handle func(mt int, data []byte, err error) bool) {
	limited := true
	next := handle
	handle = func(mt int, data []byte, err error) bool {
		more := next(mt, data, err)
		if limited && more && c.isJoined() {
			ws.SetReadLimit(int64(s.opts.MaxPayload)) // from the reading goroutine, as gorilla wants
			limited = false
		}
		return more
	}
	if c.isJoined() { // an upgraded session, or a /ws client that sent its token in the request
		ws.SetReadLimit(int64(s.opts.MaxPayload))
		limited = false
	}
	raw := rawConn(ws.NetConn())
	if raw == nil || br == nil {
		for {
			mt, data, err := ws.ReadMessage()
			if !handle(mt, data, err) || err != nil {
				return
			}
		}
	}
	more := true
	burst := func() {
		for {
			mt, data, err := ws.ReadMessage()
			if !handle(mt, data, err) || err != nil {
				more = false
				return
			}
			if br.Buffered() == 0 {
				return
			}
		}
	}
	for more {
		waitReadable(raw)
		onOwnStack(burst)
	}
}
