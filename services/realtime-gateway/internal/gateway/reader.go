package gateway

import (
	"bufio"
	"net"
	"net/http"
	"syscall"

	"github.com/gorilla/websocket"
)

// Where the process has no epoll (see reader_linux.go), an idle
// connection's only goroutine is its reader, parked until the client sends
// something. Parked inside gorilla's ReadMessage it would hold
// a 4-8 KB stack; parked in waitReadable (a peek on the socket) it keeps the
// minimal 2 KB one, and each message is read on another goroutine (see
// onOwnStack).
// That needs to know when gorilla's read buffer is empty, so the reader
// hands gorilla a bufio.Reader of its own through the hijack.

// readBufferSize is the per-connection read buffer; client messages are
// small (pongs, CONNECT, reauth) and larger ones simply take more reads.
// gorilla reads through the hijacked reader only when it is larger than
// 256 bytes (else it makes one of 4 KiB); 288 is the smallest allocation
// size above that. It holds a frame header and a control frame (at most
// 125 bytes), which gorilla peeks whole.
const readBufferSize = 288

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

// reader reads one WebSocket's messages for its connection (see
// readMessages). It is one allocation that lives as long as the connection.
type reader struct {
	s       *Server
	c       *conn
	ws      *websocket.Conn
	br      *bufio.Reader
	handle  func(mt int, data []byte, err error) bool
	raw     syscall.RawConn // the socket, for the poller (nil: read the plain way)
	key     uint32          // the poller's key for it (reader_linux.go)
	limited bool            // the read limit is still the one for unauthenticated clients
	more    bool            // reading goes on
}

// readMessages calls handle with each message of c's WebSocket ws until
// reading fails (then with the error) or handle returns false. Once c has
// joined, messages of up to MaxPayload bytes are read. On Linux it returns
// at once and the process's poller reads (see reader_linux.go); elsewhere
// it returns when reading ends.
func (s *Server) readMessages(c *conn, ws *websocket.Conn, br *bufio.Reader, handle func(mt int, data []byte, err error) bool) {
	r := &reader{s: s, c: c, ws: ws, br: br, handle: handle, limited: true, more: true}
	r.liftLimit() // an upgraded session, or a /ws client that sent its token in the request
	if br != nil {
		r.raw = rawConn(ws.NetConn())
	}
	if r.raw == nil {
		for r.more {
			onOwnStack(r.one)
		}
		return
	}
	if s.watch(r) {
		return
	}
	for r.more {
		waitReadable(r.raw)
		onOwnStack(r.burst)
	}
}

// one reads and handles one message.
func (r *reader) one() {
	mt, data, err := r.ws.ReadMessage()
	if !r.handle(mt, data, err) || err != nil {
		r.more = false
		return
	}
	r.liftLimit()
}

// burst reads the messages that arrived, until the read buffer is empty.
func (r *reader) burst() {
	for r.more {
		r.one()
		if r.br.Buffered() == 0 {
			return
		}
	}
}

// liftLimit lets a joined connection send messages of up to MaxPayload
// bytes (from the reading goroutine, as gorilla wants).
func (r *reader) liftLimit() {
	if r.limited && r.c.isJoined() {
		r.ws.SetReadLimit(int64(r.s.opts.MaxPayload))
		r.limited = false
	}
}
