//go:build unix

package gateway

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"
)

// rawConn returns the socket under c, or nil.
func rawConn(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// waitReadable parks until the socket has data, is closed by the peer, or
// fails; the read that follows sees which.
func waitReadable(raw syscall.RawConn) {
	_ = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return err != syscall.EAGAIN && err != syscall.EINTR
	})
}

// tryWrite writes b to the socket under c in one non-blocking write and
// reports how much went out: 0 when the socket's buffer is full or the write
// failed (the caller writes the usual way, and meets the error there). The
// socket's write lock is held for the write, so it does not interleave with
// another writer's frame.
//
// A write deadline left on the socket by an earlier blocking write (the
// writer's, or gorilla's for a control frame) has no meaning for a write
// that never waits, but once past it refuses every write: it is cleared and
// the write tried again.
func tryWrite(c net.Conn, b []byte) int {
	raw := rawConn(c)
	if raw == nil {
		return 0
	}
	n := 0
	write := func(fd uintptr) bool {
		w, err := syscall.Write(int(fd), b)
		if err == nil {
			n = w
		}
		return true // one attempt: never wait
	}
	if err := raw.Write(write); errors.Is(err, os.ErrDeadlineExceeded) && c.SetWriteDeadline(time.Time{}) == nil {
		_ = raw.Write(write)
	}
	return n
}
