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

	"github.com/xpeditis/notify/services/realtime-gateway/internal/engineio"
)

// Engine.IO packets the server sends as they are.
var (
	pingPacket       = []byte{'0' + byte(engineio.Ping)}
	noopPacket       = []byte{'0' + byte(engineio.Noop)}
	closePacket      = []byte{'0' + byte(engineio.Close)}
	disconnectPacket = []byte("41") // Socket.IO DISCONNECT in a message packet
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
	if c == nil || c.transport == transportPlain {
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

// openPacket is the handshake a new session starts with.
func (s *Server) openPacket(sid string, upgrades []string) []byte {
	b, _ := json.Marshal(engineio.Handshake{
		SID:          sid,
		Upgrades:     upgrades,
		PingInterval: s.opts.PingInterval.Milliseconds(),
		PingTimeout:  s.opts.PingTimeout.Milliseconds(),
		MaxPayload:   int64(s.opts.MaxPayload),
	})
	return append([]byte{'0' + byte(engineio.Open)}, b...)
}

// handshake opens a session holding the pending slot of peer.
func (s *Server) handshake(w http.ResponseWriter, r *http.Request, t, peer string) {
	now := time.Now()
	sid := newID()
	if t == "polling" {
		c := s.newConn(sid, transportPolling, peer, now)
		s.track(c)
		c.mu.Lock()
		c.scheduleLocked()
		c.mu.Unlock()
		writePolling(w, s.openPacket(sid, []string{"websocket"}))
		return
	}
	ws, br, err := s.upgrade(w, r)
	if err != nil {
		s.pending.release(peer)
		return // the upgrader answered
	}
	c := s.newConn(sid, transportWebSocket, peer, now)
	c.ws = ws
	c.answerPings(ws)
	s.track(c)
	c.mu.Lock()
	c.enqueueLocked(frame{data: s.openPacket(sid, []string{})})
	c.scheduleLocked()
	c.mu.Unlock()
	go s.readEngineWS(c, ws, br)
}

func writePolling(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// pollGet answers a long-polling GET with the queued packets, waiting for
// some when there are none. A second GET while one waits is a protocol error.
func (s *Server) pollGet(w http.ResponseWriter, r *http.Request, c *conn) {
	// The HTTP server's write timeout is meant for REST; a poll is held up
	// to a ping interval before its answer is written.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.opts.PingInterval + s.opts.WriteTimeout))
	c.mu.Lock()
	if c.transport != transportPolling || c.polling {
		overlap := c.polling
		c.mu.Unlock()
		if overlap {
			c.close(reasonProtocol, false)
		}
		engineError(w, http.StatusBadRequest, engineio.ErrCodeBadRequest, "Bad request")
		return
	}
	for len(c.queue) == 0 && !c.closed && c.transport == transportPolling {
		c.polling = true
		wake := c.pollWake
		c.mu.Unlock()
		select {
		case <-wake:
		case <-r.Context().Done():
			c.mu.Lock()
			c.polling = false
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		c.polling = false
	}
	if c.transport != transportPolling {
		// Upgraded while waiting: the client ignores this transport now,
		// so it gets nothing that matters.
		c.mu.Unlock()
		writePolling(w, noopPacket)
		return
	}
	batch := c.takeLocked()
	closed := c.closed
	c.mu.Unlock()
	packets := make([][]byte, 0, len(batch)+1)
	for _, f := range batch {
		packets = append(packets, f.data)
	}
	if closed && (len(batch) == 0 || batch[len(batch)-1].kind != frameClose) {
		packets = append(packets, closePacket) // the client reconnects
	}
	writePolling(w, engineio.EncodePayload(packets))
	c.mu.Lock()
	c.releaseLocked(batch)
	c.mu.Unlock()
}

// pollPost takes the packets of a long-polling POST.
func (s *Server) pollPost(w http.ResponseWriter, r *http.Request, c *conn) {
	c.mu.Lock()
	if c.closed && c.transport == transportPolling {
		// Closed, and the next poll brings the close packet: an error here
		// would reach the client first, and look like a failure.
		c.mu.Unlock()
		pollOK(w)
		return
	}
	if c.transport != transportPolling || c.posting || c.closed {
		overlap := c.posting
		c.mu.Unlock()
		if overlap {
			c.close(reasonProtocol, false)
		}
		engineError(w, http.StatusBadRequest, engineio.ErrCodeBadRequest, "Bad request")
		return
	}
	c.posting = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.posting = false
		c.mu.Unlock()
	}()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.opts.MaxPayload)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			c.close(reasonProtocol, false)
			engineError(w, http.StatusRequestEntityTooLarge, engineio.ErrCodeBadRequest, "Payload too large")
			return
		}
		c.close(reasonClientGone, false)
		return
	}
	packets, err := engineio.DecodePayload(body, maxPacketsPerPayload)
	if err != nil {
		c.close(reasonProtocol, false)
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
			// The gateway takes no binary events; drop their attachments.
			c.mu.Lock()
			if c.skipBinary > 0 {
				c.skipBinary--
			}
			c.mu.Unlock()
			return true
		}
		s.onSocketIO(c, p.Data)
	case engineio.Close:
		c.close(reasonClientGone, false)
	case engineio.Noop:
	default: // open or upgrade out of place
		c.close(reasonProtocol, false)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.closed
}

// readEngineWS reads a Socket.IO session's WebSocket until it closes.
func (s *Server) readEngineWS(c *conn, ws *websocket.Conn, br *bufio.Reader) {
	readMessages(ws, br, func(mt int, data []byte, err error) bool {
		if err != nil {
			c.close(readFailure(err), false)
			return false
		}
		p, err := engineio.Decode(data, mt == websocket.BinaryMessage)
		if err != nil {
			c.close(reasonProtocol, false)
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
// with "2probe", the server answers "3probe" and flushes the pending poll
// with a noop so that the client can pause polling, and the client's "5"
// switches the session over.
func (s *Server) upgradeSession(w http.ResponseWriter, r *http.Request, c *conn) {
	c.mu.Lock()
	ok := c.transport == transportPolling && c.probe == nil && !c.closed
	c.mu.Unlock()
	if !ok {
		engineError(w, http.StatusBadRequest, engineio.ErrCodeBadRequest, "Bad request")
		return
	}
	ws, br, err := s.upgrade(w, r)
	if err != nil {
		return
	}
	c.mu.Lock()
	if c.probe != nil || c.closed {
		c.mu.Unlock()
		_ = ws.Close()
		return
	}
	c.probe = ws
	c.mu.Unlock()
	if !s.probe(c, ws) {
		c.mu.Lock()
		if c.probe == ws {
			c.probe = nil
		}
		c.mu.Unlock()
		_ = ws.Close()
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = ws.Close()
		return
	}
	c.probe = nil
	c.transport = transportWebSocket
	c.ws = ws
	c.answerPings(ws)
	select { // a pending poll answers noop
	case c.pollWake <- struct{}{}:
	default:
	}
	c.kickLocked()
	c.mu.Unlock()
	s.metrics.connections.WithLabelValues(transportPolling.String()).Dec()
	s.metrics.connections.WithLabelValues(transportWebSocket.String()).Inc()
	s.metrics.upgrades.Inc()
	go s.readEngineWS(c, ws, br) // this handler's goroutine ends
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
			c.mu.Lock()
			if c.polling {
				c.enqueueLocked(frame{data: noopPacket})
			}
			c.mu.Unlock()
		case p.Type == engineio.Upgrade:
			return true
		case p.Type == engineio.Noop:
		default:
			return false
		}
	}
}
