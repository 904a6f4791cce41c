package gateway

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"github.com/xpeditis/notify/pkg/httpx"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/engineio"
)

// maxPacketsPerPayload bounds how many packets one polling POST may carry.
const maxPacketsPerPayload = 64

// serveEngineIO is /socket.io/: the Engine.IO handshake, long-polling
// requests of an open session, and WebSocket connections (new, or an upgrade
// of a polling session).
func (s *Server) serveEngineIO(w http.ResponseWriter, r *http.Request) {
	if !s.originAllowed(r) {
		engineError(w, http.StatusForbidden, engineio.ErrCodeForbidden, "Forbidden")
		return
	}
	s.cors(w, r)
	if s.draining.Load() {
		// A kept-alive connection would bring the client's next request
		// (its reconnect) back here; a new one goes where the load
		// balancer sends it.
		w.Header().Set("Connection", "close")
	}
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	q := r.URL.Query()
	if q.Get("EIO") != engineio.Protocol {
		engineError(w, http.StatusBadRequest, engineio.ErrCodeUnsupportedProto, "Unsupported protocol version")
		return
	}
	t := q.Get("transport")
	if t != "polling" && t != "websocket" {
		engineError(w, http.StatusBadRequest, engineio.ErrCodeUnknownTransport, "Transport unknown")
		return
	}
	sid := q.Get("sid")
	if sid == "" {
		if s.draining.Load() {
			engineError(w, http.StatusServiceUnavailable, engineio.ErrCodeBadRequest, "Server is shutting down")
			return
		}
		if t == "polling" && r.Method != http.MethodGet {
			engineError(w, http.StatusBadRequest, engineio.ErrCodeBadHandshake, "Bad handshake method")
			return
		}
		peer, ok := s.pending.acquire(r)
		if !ok {
			engineError(w, http.StatusTooManyRequests, engineio.ErrCodeBadRequest, "Too many pending connections")
			return
		}
		s.handshake(w, r, t, peer)
		return
	}
	c := s.lookup(sid)
	if c == nil && s.draining.Load() && t == "polling" {
		// The drain closed this session between two polls and the close
		// packet it queued went with it: a poll gets it now, a post is
		// taken (the poll brings the close), so that the client
		// reconnects as after any close, not as after an error.
		if r.Method == http.MethodGet {
			writePolling(w, closePacket)
		} else {
			pollOK(w)
		}
		return
	}
	if c == nil || c.dialect != dialect(socketIO{}) {
		engineError(w, http.StatusBadRequest, engineio.ErrCodeUnknownSID, "Session ID unknown")
		return
	}
	switch {
	case t == "websocket":
		s.upgradeSession(w, r, c)
	case r.Method == http.MethodGet:
		s.pollGet(w, r, c)
	case r.Method == http.MethodPost:
		s.pollPost(w, r, c)
	default:
		engineError(w, http.StatusBadRequest, engineio.ErrCodeBadRequest, "Bad request")
	}
}

func (s *Server) cors(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Add("Vary", "Origin")
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
			h.Set("Access-Control-Allow-Headers", req)
		}
		h.Set("Access-Control-Max-Age", "600")
	}
}

func engineError(w http.ResponseWriter, status, code int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, message})
}

// openPacket is the handshake a new session starts with. A polling
// session may not send more than the HTTP server takes in one body (the
// client splits its payloads by maxPayload), a WebSocket one may send
// messages of up to MaxPayload bytes.
func (s *Server) openPacket(sid string, upgrades []string, maxPayload int) []byte {
	b, _ := json.Marshal(engineio.Handshake{
		SID:          sid,
		Upgrades:     upgrades,
		PingInterval: s.opts.PingInterval.Milliseconds(),
		PingTimeout:  s.opts.PingTimeout.Milliseconds(),
		MaxPayload:   int64(maxPayload),
	})
	return append([]byte{'0' + byte(engineio.Open)}, b...)
}

// pollingMaxPayload is the most a polling POST may carry: MaxPayload, within
// the HTTP server's body limit.
func (s *Server) pollingMaxPayload() int { return min(s.opts.MaxPayload, httpx.MaxBodyBytes) }

// handshake opens a session holding the pending slot of peer.
func (s *Server) handshake(w http.ResponseWriter, r *http.Request, t, peer string) {
	sid := newID()
	if t == "polling" {
		s.open(sid, newPolling(), socketIO{}, peer)
		writePolling(w, s.openPacket(sid, []string{"websocket"}, s.pollingMaxPayload()))
		return
	}
	ws, br, err := s.upgrade(w, r)
	if err != nil {
		s.pending.release(peer)
		return // the upgrader answered
	}
	// The open packet is written here, before the connection exists for
	// anything else that writes (the queue's writer, the heartbeat): the
	// handshake's goroutine has the stack for it already, where a writer
	// goroutine started for this one frame would grow its own.
	_ = ws.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
	if err := ws.WriteMessage(websocket.TextMessage, s.openPacket(sid, []string{}, s.opts.MaxPayload)); err != nil {
		_ = ws.Close()
		s.pending.release(peer)
		return
	}
	c := s.open(sid, &engineWS{wsConn{ws: ws}}, socketIO{}, peer)
	c.answerPings(ws)
	go s.readEngineWS(c, ws, br)
}

func writePolling(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// pollGet answers a long-polling GET with the queued packets, waiting for
// some when there are none (see conn.poll).
func (s *Server) pollGet(w http.ResponseWriter, r *http.Request, c *conn) {
	// The HTTP server's write timeout is meant for REST; a poll is held up
	// to a ping interval before its answer is written.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.opts.PingInterval + s.opts.WriteTimeout))
	batch, res := c.poll(r.Context())
	switch res {
	case pollRefused:
		engineError(w, http.StatusBadRequest, engineio.ErrCodeBadRequest, "Bad request")
	case pollNoop:
		writePolling(w, noopPacket)
	case pollFrames:
		packets := make([][]byte, len(batch))
		for i, f := range batch {
			packets[i] = f.data
		}
		writePolling(w, engineio.EncodePayload(packets))
		c.release(batch)
	}
}

// pollPost takes the packets of a long-polling POST.
func (s *Server) pollPost(w http.ResponseWriter, r *http.Request, c *conn) {
	ok, closed := c.beginPost()
	if !ok {
		if closed {
			pollOK(w)
		} else {
			engineError(w, http.StatusBadRequest, engineio.ErrCodeBadRequest, "Bad request")
		}
		return
	}
	defer c.endPost()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.pollingMaxPayload())))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			c.close(reasonProtocol)
			engineError(w, http.StatusRequestEntityTooLarge, engineio.ErrCodeBadRequest, "Payload too large")
			return
		}
		c.close(reasonClientGone)
		return
	}
	packets, err := engineio.DecodePayload(body, maxPacketsPerPayload)
	if err != nil {
		c.close(reasonProtocol)
		engineError(w, http.StatusBadRequest, engineio.ErrCodeBadRequest, "Bad request")
		return
	}
	for _, p := range packets {
		if !s.onEnginePacket(c, p) {
			break
		}
	}
	pollOK(w)
}

// pollOK is the answer to a polling POST.
func pollOK(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html")
	_, _ = io.WriteString(w, "ok")
}

// onEnginePacket handles a packet from the client and reports whether the
// connection is still open.
func (s *Server) onEnginePacket(c *conn, p engineio.Packet) bool {
	switch p.Type {
	case engineio.Pong:
		c.pong(time.Now())
	case engineio.Ping:
		c.clientPing(time.Now(), frame{data: engineio.Text(engineio.Packet{Type: engineio.Pong, Data: p.Data})})
	case engineio.Message:
		if p.Binary {
			return c.binaryFrame()
		}
		s.onSocketIO(c, p.Data)
	case engineio.Close:
		c.close(reasonClientGone)
	case engineio.Noop:
	default: // open or upgrade out of place
		c.close(reasonProtocol)
	}
	return c.live()
}

// readEngineWS reads a Socket.IO session's WebSocket until it closes.
func (s *Server) readEngineWS(c *conn, ws *websocket.Conn, br *bufio.Reader) {
	s.readMessages(c, ws, br, func(mt int, data []byte, err error) bool {
		if err != nil {
			c.close(readFailure(err))
			return false
		}
		p, err := engineio.Decode(data, mt == websocket.BinaryMessage)
		if err != nil {
			c.close(reasonProtocol)
			return false
		}
		return s.onEnginePacket(c, p)
	})
}

// readFailure names why reading a WebSocket failed.
func readFailure(err error) string {
	if errors.Is(err, websocket.ErrReadLimit) {
		return reasonProtocol
	}
	return reasonClientGone
}

// upgradeSession moves a polling session to WebSocket: the client probes
// with "2probe", the server answers "3probe" and answers long-polls at once
// from then on so that the client can pause polling, and the client's "5"
// switches the session over. A WebSocket for a session that is already
// upgrading or upgraded is accepted and closed, as the reference server
// does.
func (s *Server) upgradeSession(w http.ResponseWriter, r *http.Request, c *conn) {
	ws, br, err := s.upgrade(w, r)
	if err != nil {
		return
	}
	if !c.beginProbe(ws) {
		_ = ws.Close()
		return
	}
	if !s.probe(c, ws) {
		c.abandonProbe(ws)
		return
	}
	if c.upgrade(ws) {
		go s.readEngineWS(c, ws, br) // this handler's goroutine ends
	}
}

// errProbePing ends a probe whose client sends WebSocket pings: the upgrade
// needs none, and their answers would have to be written outside the
// session's queue.
var errProbePing = errors.New("engineio: ping frame during the upgrade probe")

// probe runs the upgrade handshake on ws and reports whether the client
// asked to switch. It answers one "2probe" (written at once, not queued):
// the protocol needs no more.
func (s *Server) probe(c *conn, ws *websocket.Conn) bool {
	deadline := time.Now().Add(s.opts.PingTimeout + s.opts.PingInterval)
	_ = ws.SetReadDeadline(deadline)
	defer func() { _ = ws.SetReadDeadline(time.Time{}) }()
	ws.SetPingHandler(func(string) error { return errProbePing })
	probed := false
	for {
		mt, data, err := ws.ReadMessage()
		if err != nil {
			return false
		}
		p, err := engineio.Decode(data, mt == websocket.BinaryMessage)
		if err != nil {
			return false
		}
		switch {
		case p.Type == engineio.Ping && string(p.Data) == "probe" && !probed:
			probed = true
			_ = ws.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
			if err := ws.WriteMessage(websocket.TextMessage, []byte("3probe")); err != nil {
				return false
			}
			c.probed()
		case p.Type == engineio.Upgrade && probed:
			return true
		case p.Type == engineio.Noop:
		default:
			return false
		}
	}
}
