package hub

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// checkWebSocketFrame checks that frame is one final, unmasked text frame
// (RFC 6455 §5.2) whose payload is payload, its length in the shortest form.
func checkWebSocketFrame(t *testing.T, frame, payload []byte) {
	t.Helper()
	if len(frame) < 2 || frame[0] != 0x81 || frame[1]&0x80 != 0 {
		t.Fatalf("frame % x… is not a final unmasked text frame", frame[:min(len(frame), 2)])
	}
	n, rest := uint64(frame[1]), frame[2:]
	switch n {
	case 126:
		n, rest = uint64(binary.BigEndian.Uint16(rest)), rest[2:]
		if n <= 125 {
			t.Fatalf("length %d in 16 bits", n)
		}
	case 127:
		n, rest = binary.BigEndian.Uint64(rest), rest[8:]
		if n <= 0xFFFF || n>>63 != 0 {
			t.Fatalf("length %d in 64 bits", n)
		}
	}
	if n != uint64(len(rest)) || !bytes.Equal(rest, payload) {
		t.Fatalf("frame carries %d bytes %.40q…, want %d bytes %.40q…", n, rest, len(payload), payload)
	}
}

func TestTextHeaderAtEveryLengthBoundary(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 0xFFFF, 0x10000, 1 << 20} {
		payload := []byte(strings.Repeat("x", n))
		frame := append(AppendTextHeader(nil, n), payload...)
		if got := len(frame) - n; got != TextHeaderLen(n) {
			t.Errorf("%d bytes: header of %d bytes, TextHeaderLen says %d", n, got, TextHeaderLen(n))
		}
		checkWebSocketFrame(t, frame, payload)
	}
}

// TestFramesOfLargeMessages covers the 16- and 64-bit lengths of the
// frames NewMessage builds in place.
func TestFramesOfLargeMessages(t *testing.T) {
	for _, n := range []int{60, 90, 0xFFFF - 40, 0x10000, 200 << 10} {
		body := []byte(`{"event":"n","data":"` + strings.Repeat("y", n) + `"}`)
		m, err := NewMessage(7, 6, body)
		if err != nil {
			t.Fatal(err)
		}
		checkWebSocketFrame(t, m.SocketIOWS, m.SocketIO)
		checkWebSocketFrame(t, m.PlainWS(), m.Plain())
		if want := `42["n","` + strings.Repeat("y", n) + `","7"]`; string(m.SocketIO) != want {
			t.Fatalf("%d: Socket.IO frame %.60q…", n, m.SocketIO)
		}
	}
}
