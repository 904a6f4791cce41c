//go:build linux

package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// watchedCount is how many sockets the process's poller watches.
func watchedCount() int {
	p := readPoller()
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.watched)
}

// The poller reads each message of a watched WebSocket, in order, with no
// goroutine per connection, and forgets the socket when its connection
// ends, whether the client closes it or the server does.
func TestPollerReadsAndForgets(t *testing.T) {
	if readPoller() == nil {
		t.Fatal("no epoll on Linux")
	}
	s := &Server{opts: Options{MaxPayload: 1 << 20}}
	s.upgrader = websocket.Upgrader{WriteBufferPool: &sync.Pool{}}
	type accepted struct {
		c  *conn
		ws *websocket.Conn
	}
	got := make(chan string, 100)
	conns := make(chan accepted, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, br, err := s.upgrade(w, r)
		if err != nil {
			t.Error(err)
			return
		}
		c := &conn{srv: s}
		s.readMessages(c, ws, br, func(_ int, data []byte, err error) bool {
			if err != nil {
				got <- "closed"
				c.mu.Lock()
				c.state = stateClosed
				key := c.watch
				c.mu.Unlock()
				unwatch(key) // what the connection's ending does
				return false
			}
			got <- string(data)
			return true
		})
		conns <- accepted{c, ws}
	}))
	defer srv.Close()
	before := watchedCount()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")

	dial := func() *websocket.Conn {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ws
	}
	next := func() string {
		select {
		case m := <-got:
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("nothing read within 10s")
			return ""
		}
	}

	// Messages one at a time and in a burst, then the client's close.
	client := dial()
	a := <-conns
	if n := watchedCount(); n != before+1 {
		t.Fatalf("%d sockets watched, want %d", n, before+1)
	}
	for _, m := range []string{"one", "two"} {
		if err := client.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
		if r := next(); r != m {
			t.Fatalf("read %q, want %q", r, m)
		}
	}
	long := strings.Repeat("x", 3*readBufferSize) // more than one buffer
	for _, m := range []string{"three", long, "five"} {
		if err := client.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []string{"three", long, "five"} {
		if r := next(); r != m {
			t.Fatalf("read %.20q, want %.20q", r, m)
		}
	}
	_ = client.Close()
	if r := next(); r != "closed" {
		t.Fatalf("read %q after the client closed, want the error", r)
	}
	if n := watchedCount(); n != before {
		t.Fatalf("%d sockets watched after the client closed, want %d", n, before)
	}

	// The server ends a connection (as a ping timeout does): its ending
	// forgets the socket, and nothing reads it afterwards.
	client = dial()
	a = <-conns
	a.c.mu.Lock()
	a.c.state = stateClosed
	key := a.c.watch
	a.c.mu.Unlock()
	unwatch(key)
	_ = a.ws.Close()
	if n := watchedCount(); n != before {
		t.Fatalf("%d sockets watched after the server closed, want %d", n, before)
	}
	_ = client.WriteMessage(websocket.TextMessage, []byte("late"))
	_ = client.Close()
	select {
	case m := <-got:
		t.Fatalf("read %q from a connection the server closed", m)
	case <-time.After(100 * time.Millisecond):
	}
}
