package gwbench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gorilla/websocket"
)

// centrifugo is Centrifugo's bidirectional JSON protocol (client protocol
// v2) over WebSocket, as centrifuge-js speaks it: one connect command with
// the JWT; the server subscribes the user to their personal channel itself
// (client.subscribe_to_user_personal_channel), pings with an empty reply
// "{}" that the client answers with an empty command, and pushes
// publications as {"push":{"channel":…,"pub":{"data":…}}}. Several replies
// may share a frame, one per line.
//
// The benchmark runs Centrifugo with its NATS broker in raw mode, so a
// publication's data is the message the NOTIFY stream republishes on
// live.user.<id>, a contract.UserMessage {"event":…,"data":…}: the same
// bytes the gateway reads.
type centrifugo struct{}

func (centrifugo) path() string  { return "/connection/websocket" }
func (centrifugo) query() string { return "" }

// centrifugoConnectID is the id of the connect command, the only command
// the client sends that has a reply.
const centrifugoConnectID = 1

type centrifugoCommand struct {
	ID      uint32            `json:"id"`
	Connect centrifugoConnect `json:"connect"`
}

type centrifugoConnect struct {
	Token string `json:"token"`
	Name  string `json:"name"`
}

type centrifugoReply struct {
	ID    uint32 `json:"id"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Connect *struct {
		Client string                     `json:"client"`
		Subs   map[string]json.RawMessage `json:"subs"`
		Pong   bool                       `json:"pong"`
	} `json:"connect"`
	Push *struct {
		Channel string `json:"channel"`
		Pub     *struct {
			Data json.RawMessage `json:"data"`
		} `json:"pub"`
		Disconnect *struct {
			Code   int    `json:"code"`
			Reason string `json:"reason"`
		} `json:"disconnect"`
	} `json:"push"`
}

func (centrifugo) handshake(ws *websocket.Conn, token string) (session, error) {
	cmd, _ := json.Marshal(centrifugoCommand{ID: centrifugoConnectID, Connect: centrifugoConnect{Token: token, Name: "gwbench"}})
	if err := ws.WriteMessage(websocket.TextMessage, cmd); err != nil {
		return session{}, fmt.Errorf("send connect: %w", err)
	}
	for {
		_, frame, err := ws.ReadMessage()
		if err != nil {
			// Centrifugo refuses a bad token by closing the WebSocket
			// with its reason.
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return session{}, &ConnectError{Message: ce.Text}
			}
			return session{}, fmt.Errorf("read connect reply: %w", err)
		}
		// Only the connect reply can come before the session is joined: a
		// publication cannot reach a channel the client is not yet in.
		for line := range bytes.Lines(frame) {
			s, done, err := parseCentrifugoConnect(bytes.TrimSpace(line))
			if done || err != nil {
				return s, err
			}
		}
	}
}

// parseCentrifugoConnect reads one reply during the handshake: done when it
// was the connect reply (or an error), not done for a ping.
func parseCentrifugoConnect(line []byte) (s session, done bool, err error) {
	if len(line) == 0 || bytes.Equal(line, []byte("{}")) {
		return s, false, nil
	}
	var r centrifugoReply
	if err := json.Unmarshal(line, &r); err != nil {
		return s, true, fmt.Errorf("centrifugo connect reply: %w: %q", err, excerpt(line))
	}
	switch {
	case r.ID != centrifugoConnectID:
		return s, true, fmt.Errorf("expected the centrifugo connect reply, got %q", excerpt(line))
	case r.Error != nil:
		return s, true, &ConnectError{Message: r.Error.Message}
	case r.Connect == nil || r.Connect.Client == "":
		return s, true, fmt.Errorf("centrifugo connect reply without a client id: %q", excerpt(line))
	case len(r.Connect.Subs) == 0:
		return s, true, fmt.Errorf("centrifugo subscribed the client to no channel (is client.subscribe_to_user_personal_channel on?): %q", excerpt(line))
	}
	return session{pong: r.Connect.Pong}, true, nil
}

func (centrifugo) frame(ws *websocket.Conn, s session, frame []byte, onEvent func(name string, arg []byte)) (bool, error) {
	for line := range bytes.Lines(frame) {
		done, pong := parseCentrifugoPush(bytes.TrimSpace(line), onEvent)
		if done {
			return true, nil
		}
		if pong && s.pong {
			if err := ws.WriteMessage(websocket.TextMessage, []byte("{}")); err != nil {
				return false, fmt.Errorf("send pong: %w", err)
			}
		}
	}
	return false, nil
}

// parseCentrifugoPush reads one reply of a joined session: a ping (pong),
// a disconnect push (done), or a publication, whose data is a user message
// handed to onEvent as the Socket.IO client hands its events.
func parseCentrifugoPush(line []byte, onEvent func(name string, arg []byte)) (done, pong bool) {
	if len(line) == 0 {
		return false, false
	}
	if bytes.Equal(line, []byte("{}")) {
		return false, true
	}
	var r centrifugoReply
	if err := json.Unmarshal(line, &r); err != nil || r.Push == nil {
		return false, false
	}
	if r.Push.Disconnect != nil {
		return true, false
	}
	if r.Push.Pub == nil {
		return false, false
	}
	var m struct {
		Event string          `json:"event"`
		Data  json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(r.Push.Pub.Data, &m); err == nil && m.Event != "" {
		onEvent(m.Event, m.Data)
	}
	return false, false
}

// CentrifugoConfig is the configuration the benchmark runs Centrifugo with
// (its JSON config file): clients authenticate with an HS256 JWT signed
// with secret and are subscribed by the server to their personal channel
// "#<user>"; the NATS broker in raw mode maps that channel to the subject
// live.user.<user> (prefix "live.user.", "#" dropped: contract.LiveSubject
// for the benchmark's user ids, which need no escaping), so Centrifugo
// subscribes per user to the very subjects the gateway subscribes to, on
// the same NATS, with no bridge in between. The HTTP API is off (nothing publishes through it) and
// /health answers once it serves.
func CentrifugoConfig(host string, port int, natsURL, secret string) ([]byte, error) {
	type obj = map[string]any
	return json.MarshalIndent(obj{
		"http_server": obj{"address": host, "port": port},
		"log":         obj{"level": "warn"},
		"health":      obj{"enabled": true},
		"http_api":    obj{"disabled": true},
		"client": obj{
			"token":                              obj{"hmac_secret_key": secret},
			"subscribe_to_user_personal_channel": obj{"enabled": true},
		},
		"broker": obj{"enabled": true, "type": "nats", "nats": obj{
			"url": natsURL,
			"raw_mode": obj{"enabled": true, "prefix": "live.user.",
				"channel_replacements": obj{"#": ""}},
		}},
	}, "", "  ")
}
