// Package socketio encodes and decodes Socket.IO protocol 5 packets, the
// messages carried inside Engine.IO message packets.
package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Type is a Socket.IO packet type.
type Type byte

// Packet types, in wire order.
const (
	Connect Type = iota
	Disconnect
	Event
	Ack
	ConnectError
	BinaryEvent
	BinaryAck
)

// DefaultNamespace is the only namespace the gateway serves.
const DefaultNamespace = "/"

// NoID marks a packet without an acknowledgement id.
const NoID int64 = -1

// Limits of what a decoder accepts, so that hostile input stays cheap.
const (
	MaxAttachments = 10
	maxIDDigits    = 15 // fits an int64 and JavaScript's safe integers
	maxNamespace   = 256
)

// Packet is one Socket.IO packet. Data is the raw JSON payload (nil when the
// packet has none).
type Packet struct {
	Type        Type
	Namespace   string
	ID          int64
	Attachments int
	Data        json.RawMessage
}

// ErrInvalid wraps every reason a packet is refused.
var ErrInvalid = errors.New("socketio: invalid packet")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// reserved event names cannot be sent by a peer.
var reserved = map[string]bool{
	"connect": true, "connect_error": true, "disconnect": true, "disconnecting": true,
	"newListener": true, "removeListener": true,
}

// Decode parses the string form of a packet.
func Decode(s []byte) (Packet, error) {
	if len(s) == 0 {
		return Packet{}, invalid("empty")
	}
	p := Packet{Namespace: DefaultNamespace, ID: NoID}
	if s[0] < '0' || s[0] > '6' {
		return Packet{}, invalid("unknown type %q", s[0])
	}
	p.Type = Type(s[0] - '0')
	rest := s[1:]

	if p.Type == BinaryEvent || p.Type == BinaryAck {
		dash := bytes.IndexByte(rest, '-')
		if dash <= 0 || dash > 3 || !allDigits(rest[:dash]) {
			return Packet{}, invalid("attachment count")
		}
		n, _ := strconv.Atoi(string(rest[:dash]))
		if n < 1 || n > MaxAttachments {
			return Packet{}, invalid("%d attachments", n)
		}
		p.Attachments = n
		rest = rest[dash+1:]
	}

	if len(rest) > 0 && rest[0] == '/' {
		end := bytes.IndexByte(rest, ',')
		if end < 0 {
			end = len(rest)
		}
		if end > maxNamespace {
			return Packet{}, invalid("namespace longer than %d bytes", maxNamespace)
		}
		p.Namespace = string(rest[:end])
		rest = rest[min(end+1, len(rest)):]
	}

	digits := 0
	for digits < len(rest) && isDigit(rest[digits]) {
		digits++
	}
	if digits > 0 {
		if digits > maxIDDigits {
			return Packet{}, invalid("ack id longer than %d digits", maxIDDigits)
		}
		p.ID, _ = strconv.ParseInt(string(rest[:digits]), 10, 64)
		rest = rest[digits:]
	}

	if len(rest) > 0 {
		if !json.Valid(rest) {
			return Packet{}, invalid("payload is not JSON")
		}
		p.Data = json.RawMessage(rest)
	}
	if err := validPayload(p.Type, p.Data); err != nil {
		return Packet{}, err
	}
	return p, nil
}

// validPayload applies the reference parser's rules for each type.
func validPayload(t Type, data json.RawMessage) error {
	first := firstByte(data)
	switch t {
	case Connect:
		if data != nil && first != '{' {
			return invalid("CONNECT payload must be an object")
		}
	case Disconnect:
		if data != nil {
			return invalid("DISCONNECT has no payload")
		}
	case ConnectError:
		if first != '{' && first != '"' {
			return invalid("CONNECT_ERROR payload must be an object or a string")
		}
	case Event, BinaryEvent:
		if _, err := EventName(data); err != nil {
			return err
		}
	case Ack, BinaryAck:
		if first != '[' {
			return invalid("ACK payload must be an array")
		}
	}
	return nil
}

// EventName returns the name of an event payload: the first element of its
// array, which must be a string that is not reserved, or a number.
func EventName(data json.RawMessage) (string, error) {
	if firstByte(data) != '[' {
		return "", invalid("EVENT payload must be an array")
	}
	var args []json.RawMessage
	if err := json.Unmarshal(data, &args); err != nil || len(args) == 0 {
		return "", invalid("EVENT payload must be a non-empty array")
	}
	switch firstByte(args[0]) {
	case '"':
		var name string
		if err := json.Unmarshal(args[0], &name); err != nil {
			return "", invalid("event name")
		}
		if reserved[name] {
			return "", invalid("event name %q is reserved", name)
		}
		return name, nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(args[0]), nil
	}
	return "", invalid("event name must be a string or a number")
}

// EventArgs returns the arguments of an event payload after its name.
func EventArgs(data json.RawMessage) ([]json.RawMessage, error) {
	var args []json.RawMessage
	if err := json.Unmarshal(data, &args); err != nil || len(args) == 0 {
		return nil, invalid("EVENT payload must be a non-empty array")
	}
	return args[1:], nil
}

// Append appends the string form of p to dst.
func Append(dst []byte, p Packet) []byte {
	dst = append(dst, byte('0'+p.Type))
	if p.Type == BinaryEvent || p.Type == BinaryAck {
		dst = strconv.AppendInt(dst, int64(p.Attachments), 10)
		dst = append(dst, '-')
	}
	if p.Namespace != "" && p.Namespace != DefaultNamespace {
		dst = append(dst, p.Namespace...)
		dst = append(dst, ',')
	}
	if p.ID >= 0 {
		dst = strconv.AppendInt(dst, p.ID, 10)
	}
	return append(dst, p.Data...)
}

// Encode returns the string form of p.
func Encode(p Packet) []byte { return Append(make([]byte, 0, 8+len(p.Namespace)+len(p.Data)), p) }

// ConnectErrorData returns the data of a CONNECT_ERROR packet: {message, data}.
func ConnectErrorData(message string, data any) json.RawMessage {
	b, _ := json.Marshal(struct {
		Message string `json:"message"`
		Data    any    `json:"data,omitempty"`
	}{message, data})
	return b
}

func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func allDigits(b []byte) bool {
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return true
}
