package cluster

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

func TestLogLinesAtLevelErrorAreCountedAndTheLastLineKept(t *testing.T) {
	p := newProc(ProcSpec{Name: "x"})
	var out bytes.Buffer
	w := &lineWriter{out: &out, onLine: p.countLine}
	_, _ = w.Write([]byte(`{"level":"INFO","msg":"a"}` + "\n" + `{"level":"ERROR","msg":"b"}` + "\n" + `{"level":"ER`))
	_, _ = w.Write([]byte(`ROR","msg":"c"}` + "\n" + "service: ensure stream EVENTS: context deadline exceeded"))
	w.flush()
	if n := len(p.Stats().Errors); n != 2 {
		t.Errorf("%d ERROR lines counted, want 2", n)
	}
	if got := w.lastLine(); got != "service: ensure stream EVENTS: context deadline exceeded" {
		t.Errorf("last line %q", got)
	}
	if out.Len() == 0 {
		t.Error("nothing written to the log")
	}
}

// echoServer answers each connection with its name and closes it.
func echoServer(t testing.TB, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(name))
			c.Close()
		}
	}()
	return ln.Addr().String()
}

func TestTheBalancerSendsConnectionsToTheReplicasThatAnswer(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	b, err := newBalancer(func() []string { return []string{deadAddr, echoServer(t, "one"), echoServer(t, "two")} })
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	seen := map[string]int{}
	for range 6 {
		c, err := net.DialTimeout("tcp", b.Addr(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		seen[string(got)]++
	}
	if seen["one"] == 0 || seen["two"] == 0 || seen["one"]+seen["two"] != 6 {
		t.Errorf("connections went to %v; want every one to a live replica, both used", seen)
	}
}

// The ports handed to the processes of one cluster are distinct, though the
// kernel offers a port again as soon as the listener that found it closes
// (2,000 single-port calls over the ephemeral range repeat dozens of ports).
func TestFreePortsNeverRepeatAPort(t *testing.T) {
	c := &Cluster{}
	seen := map[int]bool{}
	for range 2000 {
		ports, err := c.freePorts(1)
		if err != nil {
			t.Fatal(err)
		}
		if seen[ports[0]] {
			t.Fatalf("port %d handed out twice", ports[0])
		}
		seen[ports[0]] = true
	}
}
