//go:build linux

package gateway

import (
	"sync"
	"syscall"
)

// On Linux an idle connection has no goroutine at all: its socket is
// watched by one epoll instance for the whole process (readPoller), armed
// for one event at a time (EPOLLONESHOT). When the client sends something
// the event starts a burst on a pooled goroutine (goOnStack), which reads
// what arrived and arms the socket again. A goroutine parked per
// connection, even on the smallest stack, was 2.5 KB of each idle
// connection's 8.
//
// The socket stays registered with Go's own poller as well (reads inside a
// burst wait there as usual); epoll allows one socket in several sets. An
// entry is found by a key, never by the file descriptor, which the kernel
// reuses once a connection is closed; the epoll calls go through
// RawConn.Control, which refuses a closed socket, so they never reach a
// reused descriptor.

// poller is the process's epoll instance for idle connections.
type poller struct {
	fd int

	mu      sync.Mutex
	watched map[uint32]*reader
	last    uint32
}

// readPoller returns the process's poller, nil when epoll is not
// available (connections then park a goroutine each, see readMessages).
func readPoller() *poller {
	pollerOnce.Do(func() {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return
		}
		thePoller = &poller{fd: fd, watched: make(map[uint32]*reader)}
		go thePoller.run()
	})
	return thePoller
}

var (
	pollerOnce sync.Once
	thePoller  *poller
)

// readable is what wakes a watched socket: data, or the peer's close or an
// error (the burst's read then sees which). One event, then it is disarmed
// until the burst is done.
const readable = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// watch reads r's connection from the process's poller, and reports false
// when there is none (the caller parks a goroutine instead). A connection
// already closed is not watched.
//
// The poller's lock orders the watch with the connection's ending (which
// ends the watch under the same lock, see unwatch) and gives the race
// detector the order that epoll gives the bursts: each burst arms the
// socket again under it, and the poller takes it to start the next.
func (s *Server) watch(r *reader) bool {
	p := readPoller()
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	key := p.next()
	if !r.c.watched(key) {
		return true // closed already: nothing to read
	}
	r.key = key
	p.watched[key] = r
	if !p.ctl(r, syscall.EPOLL_CTL_ADD) {
		delete(p.watched, key)
		return false
	}
	return true
}

// next returns a key no watched socket has (keys wrap around after 2³²
// connections); under mu.
func (p *poller) next() uint32 {
	for {
		p.last++
		if _, taken := p.watched[p.last]; p.last != 0 && !taken {
			return p.last
		}
	}
}

// ctl adds or re-arms r's socket, and reports whether epoll took it (not
// when the socket is closed).
func (p *poller) ctl(r *reader, op int) bool {
	ev := syscall.EpollEvent{Events: readable, Fd: int32(r.key)}
	var err error
	if cerr := r.raw.Control(func(fd uintptr) {
		err = syscall.EpollCtl(p.fd, op, int(fd), &ev)
	}); cerr != nil {
		return false
	}
	return err == nil
}

// unwatch ends the watch of a closed connection (conn's ending).
func unwatch(key uint32) {
	p := readPoller()
	if p == nil {
		return
	}
	if r := p.forget(key); r != nil {
		_ = r.raw.Control(func(fd uintptr) {
			_ = syscall.EpollCtl(p.fd, syscall.EPOLL_CTL_DEL, int(fd), nil)
		})
	}
}

func (p *poller) forget(key uint32) *reader {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.watched[key]
	delete(p.watched, key)
	return r
}

// run starts a burst for each socket that became readable.
func (p *poller) run() {
	var events [128]syscall.EpollEvent
	for {
		n, err := syscall.EpollWait(p.fd, events[:], -1)
		if err != nil {
			continue // EINTR
		}
		p.mu.Lock()
		for i := range n {
			key := uint32(events[i].Fd)
			if r := p.watched[key]; r != nil {
				goOnStack(r.woken)
			}
		}
		p.mu.Unlock()
	}
}

// woken reads what arrived, then arms the socket again unless reading
// ended or the connection closed meanwhile.
func (r *reader) woken() {
	r.burst()
	if r.more {
		p := readPoller()
		p.mu.Lock()
		armed := p.watched[r.key] == r && p.ctl(r, syscall.EPOLL_CTL_MOD)
		p.mu.Unlock()
		if armed {
			return
		}
	}
	unwatch(r.key)
}
