// Package engineio encodes and decodes Engine.IO protocol 4 packets: one
// packet per WebSocket frame, or several joined by a record separator in an
// HTTP long-polling body.
package engineio

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
)

// Protocol is the Engine.IO protocol version this package speaks (EIO=4).
const Protocol = "4"

// Type is an Engine.IO packet type.
type Type byte

// Packet types, in wire order.
const (
	Open Type = iota
	Close
	Ping
	Pong
	Message
	Upgrade
	Noop
)

func (t Type) String() string {
	names := [...]string{"open", "close", "ping", "pong", "message", "upgrade", "noop"}
	if int(t) < len(names) {
		return names[t]
	}
	return fmt.Sprintf("type(%d)", byte(t))
}

// Separator joins packets in a long-polling body.
const Separator = '\x1e'

// Packet is one Engine.IO packet. Binary marks a message whose data is bytes
// rather than text (a binary WebSocket frame, or a "b"-prefixed base64 packet
// in a polling body).
type Packet struct {
	Type   Type
	Data   []byte
	Binary bool
}

// ErrEmptyPacket is returned for a packet with no type.
var ErrEmptyPacket = errors.New("engineio: empty packet")

// Decode parses a packet received in a WebSocket frame (binary tells whether
// the frame was binary) or split out of a polling body.
func Decode(data []byte, binary bool) (Packet, error) {
	if binary {
		return Packet{Type: Message, Data: data, Binary: true}, nil
	}
	if len(data) == 0 {
		return Packet{}, ErrEmptyPacket
	}
	if data[0] == 'b' {
		raw := make([]byte, base64.StdEncoding.DecodedLen(len(data)-1))
		n, err := base64.StdEncoding.Decode(raw, data[1:])
		if err != nil {
			return Packet{}, fmt.Errorf("engineio: binary packet: %w", err)
		}
		return Packet{Type: Message, Data: raw[:n], Binary: true}, nil
	}
	t := Type(data[0] - '0')
	if data[0] < '0' || t > Noop {
		return Packet{}, fmt.Errorf("engineio: unknown packet type %q", data[0])
	}
	return Packet{Type: t, Data: data[1:]}, nil
}

// AppendText appends the text form of p: its type digit and data, or "b" and
// base64 for binary data (the polling encoding).
func AppendText(dst []byte, p Packet) []byte {
	if p.Binary {
		dst = append(dst, 'b')
		return base64.StdEncoding.AppendEncode(dst, p.Data)
	}
	dst = append(dst, byte('0'+p.Type))
	return append(dst, p.Data...)
}

// Text returns the text form of a packet.
func Text(p Packet) []byte { return AppendText(make([]byte, 0, 1+len(p.Data)), p) }

// EncodePayload joins text-encoded packets into a polling body.
func EncodePayload(packets [][]byte) []byte {
	n := len(packets)
	for _, p := range packets {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for i, p := range packets {
		if i > 0 {
			out = append(out, Separator)
		}
		out = append(out, p...)
	}
	return out
}

// DecodePayload splits a polling body into packets. A body holds at most
// maxPackets packets, so that a small body cannot fan out into unbounded work.
func DecodePayload(body []byte, maxPackets int) ([]Packet, error) {
	if len(body) == 0 {
		return nil, ErrEmptyPacket
	}
	if n := bytes.Count(body, []byte{Separator}) + 1; n > maxPackets {
		return nil, fmt.Errorf("engineio: %d packets in one payload, over the limit of %d", n, maxPackets)
	}
	var out []Packet
	for part := range bytes.SplitSeq(body, []byte{Separator}) {
		p, err := Decode(part, false)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Handshake is the data of the open packet.
type Handshake struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int64    `json:"pingInterval"`
	PingTimeout  int64    `json:"pingTimeout"`
	MaxPayload   int64    `json:"maxPayload"`
}

// Error codes of the JSON body of a refused HTTP request, as the reference
// server sends them.
const (
	ErrCodeUnknownTransport = 0
	ErrCodeUnknownSID       = 1
	ErrCodeBadHandshake     = 2
	ErrCodeBadRequest       = 3
	ErrCodeForbidden        = 4
	ErrCodeUnsupportedProto = 5
)
