package hub

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/xpeditis/notify/pkg/contract"
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
	// Plain is the /ws frame {"type":"message","event":…,"data":…,"offset":seq}.
	Plain []byte
}

// NewMessage decodes the body of a NOTIFY message (a contract.UserMessage)
// and encodes its frames.
func NewMessage(seq, last uint64, body []byte) (*Message, error) {
	if len(body) > MaxMessageBytes {
		return nil, fmt.Errorf("message of %d bytes is over the limit of %d", len(body), MaxMessageBytes)
	}
	var um contract.UserMessage
	if err := json.Unmarshal(body, &um); err != nil {
		return nil, fmt.Errorf("decode user message: %w", err)
	}
	if um.Event == "" {
		return nil, fmt.Errorf("decode user message: event is required")
	}
	if len(um.Data) == 0 {
		um.Data = json.RawMessage("null")
	}
	offset := strconv.FormatUint(seq, 10)
	m := &Message{Seq: seq, Last: last, Event: um.Event, Data: um.Data}
	m.SocketIO = socketio.AppendEvent([]byte{'4'}, um.Event, um.Data, json.RawMessage(`"`+offset+`"`))
	plain, err := json.Marshal(plainFrame{Type: "message", Event: um.Event, Data: um.Data, Offset: seq})
	if err != nil {
		return nil, fmt.Errorf("encode frame: %w", err)
	}
	m.Plain = plain
	return m, nil
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
