package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/xpeditis/notify/services/realtime-gateway/internal/hub"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/recovery"
)

// WebSocket close codes of /ws (application range 4000-4999 for ours).
const (
	closeUnauthorized = 4001
	closeTooMany      = 4008
)

// plainIn is a frame from a /ws client.
type plainIn struct {
	Type  string  `json:"type"`
	Token string  `json:"token,omitempty"`
	Since *uint64 `json:"since,omitempty"`
}

var errNoType = errors.New("a frame is a JSON object with a type")

// decodePlain reads a /ws client frame.
func decodePlain(data []byte) (plainIn, error) {
	var in plainIn
	if err := json.Unmarshal(data, &in); err != nil {
		return plainIn{}, err
	}
	if in.Type == "" {
		return plainIn{}, errNoType
	}
	return in, nil
}

func plainError(code, message string) []byte {
	b, _ := json.Marshal(struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}{"error", code, message})
	return b
}

// servePlain is /ws. The token comes in the Authorization header, the token
// query parameter, or a first {"type":"auth"} frame; since (query or auth
// frame) resumes after an offset.
func (s *Server) servePlain(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		w.Header().Set("Connection", "close")
		http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
		return
	}
	token := bearer(r.Header.Get("Authorization"))
	if token == "" {
		token = r.URL.Query().Get("token")
	}
	var since *uint64
	if v := r.URL.Query().Get("since"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			http.Error(w, "since must be an offset (a non-negative integer)", http.StatusBadRequest)
			return
		}
		since = &n
	}
	peer, ok := s.pending.acquire(r)
	if !ok {
		http.Error(w, "too many pending connections", http.StatusTooManyRequests)
		return
	}
	ws, br, err := s.upgrade(w, r)
	if err != nil {
		s.pending.release(peer)
		return
	}
	now := time.Now()
	c := s.newConn(newID(), transportPlain, peer, now)
	c.ws = ws
	ws.SetPongHandler(func(string) error { c.pong(time.Now()); return nil })
	c.answerPings(ws)
	s.track(c)
	c.mu.Lock()
	c.scheduleLocked()
	c.mu.Unlock()
	if token != "" {
		s.plainConnect(c, token, since)
	}
	go s.readPlain(c, ws, br)
}

func bearer(h string) string {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

func (s *Server) readPlain(c *conn, ws *websocket.Conn, br *bufio.Reader) {
	readMessages(ws, br, func(_ int, data []byte, err error) bool {
		if err != nil {
			c.close(readFailure(err), false)
			return false
		}
		in, err := decodePlain(data)
		if err != nil {
			c.send(plainError("bad_frame", "frames are JSON objects with a type"))
			return true
		}
		switch in.Type {
		case "auth":
			c.mu.Lock()
			connected, connecting := c.connected, c.connecting
			c.mu.Unlock()
			switch {
			case connected:
				s.plainReauth(c, in.Token)
			case !connecting:
				s.plainConnect(c, in.Token, in.Since)
			}
		case "ping":
			c.clientPing(time.Now(), frame{data: []byte(`{"type":"pong"}`)})
		default:
			c.send(plainError("bad_frame", "unknown frame type"))
		}
		return true
	})
}

func (s *Server) plainReauth(c *conn, token string) {
	res := s.reauth(c, token)
	if !res.OK {
		c.send(plainError(codeInvalidToken, res.Message))
		return
	}
	b, _ := json.Marshal(struct {
		Type      string    `json:"type"`
		ExpiresAt time.Time `json:"expiresAt"`
	}{"auth_ok", *res.ExpiresAt})
	c.send(b)
}

// plainConnect authenticates a /ws client and starts its stream: replay
// after since when the history still holds it, else from the user's latest
// offset, so that the welcome always carries an offset to resume from.
func (s *Server) plainConnect(c *conn, token string, since *uint64) {
	claims, err := s.verifier.Verify(token)
	if err != nil {
		s.metrics.connectErrors.WithLabelValues(codeInvalidToken).Inc()
		c.send(plainError(codeInvalidToken, err.Error()))
		c.closeWith(reasonRefused, true, closeUnauthorized, "invalid token")
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, recoveryOpsTimeout)
	defer cancel()
	resumed := false
	var p recovery.Point
	if since != nil {
		p.After = *since
		ok, err := s.store.Complete(ctx, claims.UserID, p)
		if err != nil {
			s.log.Warn("resume check", "err", err)
		}
		resumed = ok
		result := "miss"
		if ok {
			result = "hit"
		}
		s.metrics.recovery.WithLabelValues(result).Inc()
	}
	if !resumed {
		// The latest offset is read before joining, and the replay after
		// joining covers what was published in between.
		if p.After, err = s.store.LastOffset(ctx, claims.UserID); err != nil {
			s.log.Error("read latest offset", "err", err)
			s.metrics.connectErrors.WithLabelValues(codeUnavailable).Inc()
			c.send(plainError(codeUnavailable, "the gateway cannot read the stream right now; retry"))
			c.closeWith(reasonRefused, true, websocket.CloseTryAgainLater, "unavailable")
			return
		}
	}
	c.mu.Lock()
	c.connecting, c.user, c.replaying, c.lastSeq = true, claims.UserID, true, p.After
	c.mu.Unlock()
	if err := s.hub.Join(claims.UserID, c); err != nil {
		c.mu.Lock()
		c.connecting, c.user = false, ""
		c.mu.Unlock()
		code, msg, closeCode := codeUnavailable, "the gateway cannot subscribe right now; retry", websocket.CloseTryAgainLater
		if errors.Is(err, hub.ErrTooManyConnections) {
			code, msg, closeCode = codeTooMany, err.Error(), closeTooMany
		}
		s.metrics.connectErrors.WithLabelValues(code).Inc()
		c.send(plainError(code, msg))
		c.closeWith(reasonRefused, true, closeCode, code)
		return
	}
	welcome, _ := json.Marshal(struct {
		Type      string    `json:"type"`
		User      string    `json:"user"`
		Resumed   bool      `json:"resumed"`
		Offset    uint64    `json:"offset"`
		ExpiresAt time.Time `json:"expiresAt"`
	}{"welcome", claims.UserID, resumed, p.After, claims.ExpiresAt.UTC()})
	if !s.markJoined(c, claims, welcome) {
		return
	}
	go s.replay(c, claims.UserID, p)
}
