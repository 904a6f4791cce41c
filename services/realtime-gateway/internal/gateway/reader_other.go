//go:build !unix

package gateway

import (
	"net"
	"syscall"
)

// rawConn returns nil: without a peek, connections read the plain way.
func rawConn(net.Conn) syscall.RawConn { return nil }

func waitReadable(syscall.RawConn) {}

func tryWrite(net.Conn, []byte) int { return 0 }
