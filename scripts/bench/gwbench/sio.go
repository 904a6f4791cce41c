// Package gwbench is the load generator of the realtime-gateway benchmark:
// small WebSocket clients (Socket.IO v4, and Centrifugo's JSON protocol),
// worker processes that hold thousands of such clients each, and a
// coordinator that drives them through the connection storm, the idle
// period and the delivery phases, samples the server's memory and CPU, and
// reports the figures.
//
// Any Socket.IO v4 server that authenticates with {token} in the CONNECT
// packet and emits "notification" events can be measured: the Go gateway
// and the Node.js reference server are. Centrifugo is measured with each
// user subscribed to a personal channel fed from the same NATS subjects
// (centrifugo.go).
package gwbench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gorilla/websocket"
)

// socketIO is the Socket.IO v4 protocol over a WebSocket from the start
// (no long-polling), as socket.io-client with transports: ["websocket"].
type socketIO struct{}

func (socketIO) path() string  { return "/socket.io/" }
func (socketIO) query() string { return "EIO=4&transport=websocket" }

func (socketIO) handshake(ws *websocket.Conn, token string) (session, error) {
	_, frame, err := ws.ReadMessage()
	if err != nil {
		return session{}, fmt.Errorf("read open packet: %w", err)
	}
	if _, err := parseOpen(frame); err != nil {
		return session{}, err
	}
	if err := ws.WriteMessage(websocket.TextMessage, connectFrame(token)); err != nil {
		return session{}, fmt.Errorf("send connect: %w", err)
	}
	for {
		_, frame, err := ws.ReadMessage()
		if err != nil {
			return session{}, fmt.Errorf("read connect reply: %w", err)
		}
		switch {
		case len(frame) == 1 && frame[0] == eioPing:
			if err := sioPong(ws); err != nil {
				return session{}, err
			}
		case len(frame) == 1 && frame[0] == eioNoop:
		default:
			return session{}, parseConnectReply(frame)
		}
	}
}

func (socketIO) frame(ws *websocket.Conn, _ session, frame []byte, onEvent func(name string, arg []byte)) (bool, error) {
	if len(frame) == 0 {
		return false, nil
	}
	switch frame[0] {
	case eioPing:
		return false, sioPong(ws)
	case eioClose:
		return true, nil
	case eioMessage:
		if len(frame) > 1 && frame[1] == sioDisconnect {
			return true, nil
		}
		if name, arg, ok := parseEvent(frame); ok {
			onEvent(name, arg)
		}
	}
	return false, nil
}

func sioPong(ws *websocket.Conn) error {
	if err := ws.WriteMessage(websocket.TextMessage, []byte{eioPong}); err != nil {
		return fmt.Errorf("send pong: %w", err)
	}
	return nil
}

// Engine.IO 4 packet types: the first byte of each WebSocket text frame.
const (
	eioOpen    = '0'
	eioClose   = '1'
	eioPing    = '2'
	eioPong    = '3'
	eioMessage = '4'
	eioNoop    = '6'
)

// Socket.IO 5 packet types: the byte after the Engine.IO message type.
const (
	sioConnect      = '0'
	sioDisconnect   = '1'
	sioEvent        = '2'
	sioConnectError = '4'
)

// openPacket is the payload of the Engine.IO open packet.
type openPacket struct {
	SID          string `json:"sid"`
	PingInterval int    `json:"pingInterval"`
	PingTimeout  int    `json:"pingTimeout"`
	MaxPayload   int    `json:"maxPayload"`
}

func parseOpen(frame []byte) (openPacket, error) {
	var p openPacket
	if len(frame) == 0 || frame[0] != eioOpen {
		return p, fmt.Errorf("expected the engine.io open packet, got %q", excerpt(frame))
	}
	if err := json.Unmarshal(frame[1:], &p); err != nil {
		return p, fmt.Errorf("engine.io open packet: %w", err)
	}
	if p.SID == "" {
		return p, errors.New("engine.io open packet has no sid")
	}
	return p, nil
}

// connectFrame is the Socket.IO CONNECT packet of the default namespace
// with the auth object the Xpeditis frontend sends.
func connectFrame(token string) []byte {
	auth, _ := json.Marshal(struct {
		Token string `json:"token"`
	}{token})
	return append([]byte{eioMessage, sioConnect}, auth...)
}

// ConnectError is the server's CONNECT_ERROR: the handshake reached the
// server, which refused it.
type ConnectError struct{ Message string }

func (e *ConnectError) Error() string { return "connect_error: " + e.Message }

// parseConnectReply accepts the server's answer to CONNECT.
func parseConnectReply(frame []byte) error {
	if len(frame) < 2 || frame[0] != eioMessage {
		return fmt.Errorf("expected a socket.io connect reply, got %q", excerpt(frame))
	}
	body := frame[2:]
	switch frame[1] {
	case sioConnect:
		var ok struct {
			SID string `json:"sid"`
		}
		if err := json.Unmarshal(body, &ok); err != nil || ok.SID == "" {
			return fmt.Errorf("socket.io connect reply without sid: %q", excerpt(frame))
		}
		return nil
	case sioConnectError:
		var ce struct {
			Message string `json:"message"`
		}
		if err := json.Unmarshal(body, &ce); err != nil {
			return &ConnectError{Message: string(excerpt(body))}
		}
		return &ConnectError{Message: ce.Message}
	default:
		return fmt.Errorf("expected a socket.io connect reply, got %q", excerpt(frame))
	}
}

// parseEvent splits a Socket.IO EVENT frame of the default namespace,
// 42[name,arg,...] with an optional ack id before the array, into the
// event name and its first argument. ok is false for every other frame.
func parseEvent(frame []byte) (name string, arg json.RawMessage, ok bool) {
	if len(frame) < 3 || frame[0] != eioMessage || frame[1] != sioEvent {
		return "", nil, false
	}
	body := frame[2:]
	for len(body) > 0 && body[0] >= '0' && body[0] <= '9' {
		body = body[1:]
	}
	if len(body) == 0 || body[0] != '[' {
		return "", nil, false
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(body, &parts); err != nil || len(parts) == 0 {
		return "", nil, false
	}
	if err := json.Unmarshal(parts[0], &name); err != nil {
		return "", nil, false
	}
	if len(parts) > 1 {
		arg = parts[1]
	}
	return name, arg, true
}

// Stamp is what the publisher puts in each notification's data so that the
// client can measure and account for it.
type Stamp struct {
	Run    string `json:"benchRun"`
	Phase  string `json:"benchPhase"`
	Seq    uint64 `json:"benchSeq"`
	SentAt int64  `json:"benchSentAt"` // Unix nanoseconds, just before publishing
}

// stampOf reads the stamp out of a notification object. Numbers are read
// as floats: the pipeline carries them through protobuf's Struct, whose
// numbers are doubles and may come back in exponent form.
func stampOf(notification json.RawMessage) (Stamp, bool) {
	var n struct {
		Data struct {
			Run    string  `json:"benchRun"`
			Phase  string  `json:"benchPhase"`
			Seq    float64 `json:"benchSeq"`
			SentAt float64 `json:"benchSentAt"`
		} `json:"data"`
	}
	if err := json.Unmarshal(notification, &n); err != nil || n.Data.Run == "" || n.Data.Seq < 0 {
		return Stamp{}, false
	}
	return Stamp{Run: n.Data.Run, Phase: n.Data.Phase, Seq: uint64(n.Data.Seq), SentAt: int64(n.Data.SentAt)}, true
}

func excerpt(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if len(b) > 120 {
		return append(b[:120:120], "..."...)
	}
	return b
}
