package hub

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/xpeditis/notify/services/realtime-gateway/internal/socketio"
)

// MaxMessageBytes bounds one user message; a larger one is dropped.
const MaxMessageBytes = 256 << 10

// Message is one message of a user's stream, with its frames encoded once
// for every connection that receives it.
type Message struct {
	Seq   uint64 // NOTIFY stream sequence: the offset clients resume from
	Last  uint64 // sequence of the user's previous message (0 when unknown)
	Event string
	Data  json.RawMessage

	// SocketIO is the Engine.IO message packet carrying the Socket.IO event
	// 42["<event>",<data>,"<seq>"]: the trailing string is the offset that
	// socket.io-client keeps for connection-state recovery.
	SocketIO []byte
	// SocketIOWS is SocketIO as a WebSocket text frame, header included
	// (SocketIO is its tail): what every WebSocket connection of the user
	// writes to its socket as it is, without framing it again.
	SocketIOWS []byte

	event     []byte // the event name as JSON, inside SocketIO
	plainOnce sync.Once
	plainWS   []byte
	plainLen  int // of the payload at the end of plainWS
}

// Plain is the /ws frame {"type":"message","event":…,"data":…,"offset":seq}.
// Most users have only Socket.IO connections: it is encoded on first use.
func (m *Message) Plain() []byte {
	ws := m.PlainWS()
	return ws[len(ws)-m.plainLen:]
}

// PlainWS is Plain as a WebSocket text frame, header included.
func (m *Message) PlainWS() []byte {
	m.plainOnce.Do(func() { m.plainWS, m.plainLen = plainFrameOf(m.Seq, m.Event, m.event, m.Data) })
	return m.plainWS
}

// NewMessage decodes the body of a NOTIFY message (a contract.UserMessage)
// and encodes its Socket.IO frame. Every live message goes through here once,
// so the frame is spliced from the raw data in one allocation instead of
// being re-encoded; FuzzFrames checks that the frames decode to exactly what
// encoding/json makes of the same message.
func NewMessage(seq, last uint64, body []byte) (*Message, error) {
	if len(body) > MaxMessageBytes {
		return nil, fmt.Errorf("message of %d bytes is over the limit of %d", len(body), MaxMessageBytes)
	}
	// The data is copied straight into the frame's buffer and then moved
	// behind the event name: the frame is the only copy.
	in := struct {
		Event string    `json:"event"`
		Data  frameData `json:"data"`
	}{Data: frameData{buf: make([]byte, 0, len(body)+frameSlack)}}
	if event, data, ok := canonicalBody(body); ok {
		in.Event, in.Data.buf = event, append(in.Data.buf, data...)
	} else if err := json.Unmarshal(body, &in); err != nil {
		return nil, fmt.Errorf("decode user message: %w", err)
	}
	if in.Event == "" {
		return nil, fmt.Errorf("decode user message: event is required")
	}
	buf := in.Data.buf
	if len(buf) == 0 {
		buf = append(buf, "null"...)
	}
	dataLen := len(buf)
	eventLen := len(in.Event) + 2
	var event []byte // the name as JSON, when it needs escaping
	if !plainString(in.Event) {
		event, _ = json.Marshal(in.Event) // a string always encodes
		eventLen = len(event)
	}
	var digits [20]byte
	offset := strconv.AppendUint(digits[:0], seq, 10)

	// 42["<event>",<data>,"<offset>"] behind its WebSocket header
	dataAt := 3 + eventLen + 1
	size := dataAt + dataLen + 2 + len(offset) + 2
	hdr := TextHeaderLen(size)
	wire := slices.Grow(buf, hdr+size-len(buf))
	wire = wire[:hdr+dataAt+dataLen]
	copy(wire[hdr+dataAt:], wire[:dataLen]) // overlapping: a memmove
	AppendTextHeader(wire[:0], size)
	sio := wire[hdr:]
	sio[0], sio[1], sio[2] = '4', '0'+byte(socketio.Event), '['
	n := 3
	if event == nil {
		sio[n] = '"'
		n += 1 + copy(sio[n+1:], in.Event)
		sio[n] = '"'
		n++
	} else {
		n += copy(sio[n:], event)
	}
	sio[n] = ','
	end := dataAt + dataLen
	sio = append(sio, ',', '"')
	sio = append(sio, offset...)
	sio = append(sio, '"', ']')
	return &Message{
		Seq: seq, Last: last, Event: in.Event, SocketIO: sio[:len(sio):len(sio)], SocketIOWS: wire[: hdr+len(sio) : hdr+len(sio)],
		Data:  sio[dataAt:end:end],
		event: sio[3 : 3+eventLen : 3+eventLen],
	}, nil
}

// frameData takes the raw JSON of a message's data into a buffer of its
// own, the one the frame is built in, when the body is not canonical (see
// canonicalBody). encoding/json hands UnmarshalJSON the
// value's bytes, valid and whole; when the key is given twice the last one
// counts, as for a json.RawMessage.
type frameData struct{ buf []byte }

func (d *frameData) UnmarshalJSON(raw []byte) error {
	d.buf = append(d.buf[:0], raw...)
	return nil
}

// frameSlack covers what a Socket.IO frame adds to the body it comes from
// unless the event name needs escaping: the body has 18 bytes around the
// name and data ({"event":,"data":}), the frame 28 (42[,,"<20 digits>"])
// and its WebSocket header 2 or 4 below 64 KiB.
const frameSlack = 16

// plainString reports whether json.Marshal would encode s as "s".
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7F, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// plainFrameOf encodes the /ws frame as a WebSocket text frame and returns
// it with the length of its payload; event is the name as JSON.
func plainFrameOf(seq uint64, name string, event, data []byte) ([]byte, int) {
	if !marshalsAsIs(data) {
		// json.Marshal compacts the data and escapes HTML in it. Both
		// were valid JSON when the message was decoded: it cannot fail.
		b, _ := json.Marshal(plainFrame{Type: "message", Event: name, Data: data, Offset: seq})
		return append(AppendTextHeader(make([]byte, 0, TextHeaderLen(len(b))+len(b)), len(b)), b...), len(b)
	}
	var digits [20]byte
	offset := strconv.AppendUint(digits[:0], seq, 10)
	size := len(plainEvent) + len(event) + len(plainData) + len(data) + len(plainOffset) + len(offset) + 1
	plain := AppendTextHeader(make([]byte, 0, TextHeaderLen(size)+size), size)
	plain = append(plain, plainEvent...)
	plain = append(plain, event...)
	plain = append(plain, plainData...)
	plain = append(plain, data...)
	plain = append(plain, plainOffset...)
	plain = append(plain, offset...)
	return append(plain, '}'), size
}

// The constant parts of the /ws frame, in plainFrame's field order.
const (
	plainEvent  = `{"type":"message","event":`
	plainData   = `,"data":`
	plainOffset = `,"offset":`
)

// marshalsAsIs reports whether json.Marshal would copy the valid JSON raw
// unchanged: no whitespace outside strings, nothing it escapes for HTML
// (<, >, &, U+2028, U+2029).
func marshalsAsIs(raw []byte) bool {
	inString := false
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; c {
		case '<', '>', '&':
			return false
		case 0xE2:
			if i+2 < len(raw) && raw[i+1] == 0x80 && raw[i+2]&^1 == 0xA8 {
				return false
			}
		case ' ', '\t', '\r', '\n':
			if !inString {
				return false
			}
		case '\\':
			if inString {
				i++ // the escaped byte cannot end the string
			}
		case '"':
			inString = !inString
		}
	}
	return true
}

// Skip is a placeholder for a message that cannot be delivered: connections
// move their offset past it and send nothing.
func Skip(seq, last uint64) *Message { return &Message{Seq: seq, Last: last} }

// Skipped reports whether m is a placeholder made by Skip.
func (m *Message) Skipped() bool { return m.SocketIO == nil }

type plainFrame struct {
	Type   string          `json:"type"`
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data"`
	Offset uint64          `json:"offset"`
}
