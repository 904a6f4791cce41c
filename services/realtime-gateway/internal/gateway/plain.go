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

	"github.com/xpeditis/notify/pkg/auth"
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
	c := s.open(newID(), &plainWS{wsConn{ws: ws}}, plain{}, peer)
	ws.SetPongHandler(func(string) error { c.pong(time.Now()); return nil })
	c.answerPings(ws)
	if token != "" {
		c.connect(connectRequest{token: token, since: since})
	}
	go readPlain(c, ws, br)
}

func bearer(h string) string {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// readPlain reads a /ws client's frames: auth (connect, or a newer token
// once joined) and ping.
func readPlain(c *conn, ws *websocket.Conn, br *bufio.Reader) {
	c.srv.readMessages(c, ws, br, func(_ int, data []byte, err error) bool {
		if err != nil {
			c.close(readFailure(err))
			return false
		}
		in, err := decodePlain(data)
		if err != nil {
			c.send(plainError("bad_frame", "frames are JSON objects with a type"))
			return true
		}
		switch in.Type {
		case "auth":
			if c.isJoined() {
				plainReauth(c, in.Token)
			} else {
				c.connect(connectRequest{token: in.Token, since: in.Since})
			}
		case "ping":
			c.clientPing(time.Now(), frame{data: []byte(`{"type":"pong"}`)})
		default:
			c.send(plainError("bad_frame", "unknown frame type"))
		}
		return c.live()
	})
}

func plainReauth(c *conn, token string) {
	res := c.renew(token)
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

// plain is the /ws dialect of the join path: no session records; the
// stream replays after since when the history still holds it, else from
// the user's latest offset, so that the welcome always carries an offset
// to resume from.
type plain struct{}

func (plain) resume(ctx context.Context, c *conn, claims auth.Claims, req connectRequest) (start, error) {
	s := c.srv
	st := start{replay: true}
	if req.since != nil {
		st.asked, st.point.After = true, *req.since
		var err error
		st.hit, err = s.store.Complete(ctx, claims.UserID, st.point)
		if err != nil {
			s.log.Warn("resume check", "err", err)
		}
		if st.hit {
			return st, nil
		}
	}
	// The latest offset is read before joining, and the replay after
	// joining covers what was published in between.
	var err error
	st.point.After, err = s.store.LastOffset(ctx, claims.UserID)
	return st, err
}

func (plain) welcome(_ context.Context, _ *conn, claims auth.Claims, st start) []byte {
	b, _ := json.Marshal(struct {
		Type      string    `json:"type"`
		User      string    `json:"user"`
		Resumed   bool      `json:"resumed"`
		Offset    uint64    `json:"offset"`
		ExpiresAt time.Time `json:"expiresAt"`
	}{"welcome", claims.UserID, st.hit, st.point.After, claims.ExpiresAt.UTC()})
	return b
}

// refuse sends an error frame and closes with a code the client can act
// on: 4001 for a bad token, 4008 at the per-user limit, 1013 (try again
// later) when the gateway failed.
func (plain) refuse(c *conn, code, message string, _ map[string]any) {
	closeCode, text := websocket.CloseTryAgainLater, "unavailable"
	switch code {
	case codeInvalidToken:
		closeCode, text = closeUnauthorized, "invalid token"
	case codeTooMany:
		closeCode, text = closeTooMany, code
	}
	c.send(plainError(code, message))
	c.closeGracefully(reasonRefused, closeCode, text)
}

func (plain) expired(c *conn) {
	c.send(plainError("token_expired", "token expired: authenticate again"))
	c.closeGracefully(reasonTokenExpired, closeUnauthorized, "token expired")
}
