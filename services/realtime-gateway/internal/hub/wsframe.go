package hub

import "encoding/binary"

// A message's frames are written to WebSocket connections as they are
// (RFC 6455 §5.2): a server's frames are not masked, and the gateway's
// upgrader negotiates no extension, so the header of a whole text message
// depends only on its length.

// TextHeaderLen is the length of the header of a text frame of n bytes.
func TextHeaderLen(n int) int {
	switch {
	case n <= 125:
		return 2
	case n <= 0xFFFF:
		return 4
	}
	return 10
}

// AppendTextHeader appends the header of a final, unmasked text frame
// carrying n bytes.
func AppendTextHeader(b []byte, n int) []byte {
	const finText = 0x80 | 0x1
	switch {
	case n <= 125:
		return append(b, finText, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(b, finText, 126), uint16(n))
	}
	return binary.BigEndian.AppendUint64(append(b, finText, 127), uint64(n))
}
