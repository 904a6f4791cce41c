//go:build unix

package gateway

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestTryWriteIgnoresAStaleDeadline: a deadline left by an earlier blocking
// write must not make every later non-blocking write fail (which would send
// each message through a writer goroutine again).
func TestTryWriteIgnoresAStaleDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	defer server.Close()

	if err := server.SetWriteDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Write([]byte("x")); err == nil {
		t.Fatal("a write past its deadline succeeded: the test does not test anything")
	}
	msg := []byte("hello")
	if n := tryWrite(server, msg); n != len(msg) {
		t.Fatalf("tryWrite wrote %d of %d bytes", n, len(msg))
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(client, got); err != nil || string(got) != string(msg) {
		t.Fatalf("read %q, %v", got, err)
	}
}
