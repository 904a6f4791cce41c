package gwbench

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Buffer sizes of one client. Notifications are a few hundred bytes; a
// larger frame still arrives, gorilla reads it in several pieces. Write
// buffers come from a shared pool because a client only writes pongs.
const (
	clientReadBuffer  = 1024
	clientWriteBuffer = 256
)

// Dialer opens Socket.IO connections over WebSocket, spreading them over
// several local source addresses: one address can open only as many
// connections to the server as there are ephemeral ports.
type Dialer struct {
	ws      websocket.Dialer
	url     string
	sources []net.IP
	next    atomic.Uint64
}

// NewDialer returns a dialer for the server at base (http://host:port or
// ws://host:port; the Socket.IO path /socket.io/ is used when base has no
// path).
func NewDialer(base string, sources []net.IP, handshakeTimeout time.Duration) (*Dialer, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("server url: %w", err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return nil, fmt.Errorf("server url %q: scheme must be http or ws", base)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/socket.io/"
	}
	u.RawQuery = "EIO=4&transport=websocket"
	d := &Dialer{url: u.String(), sources: sources}
	d.ws = websocket.Dialer{
		HandshakeTimeout: handshakeTimeout,
		ReadBufferSize:   clientReadBuffer,
		WriteBufferSize:  clientWriteBuffer,
		WriteBufferPool:  &sync.Pool{},
		NetDialContext:   d.dial,
	}
	return d, nil
}

func (d *Dialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := net.Dialer{}
	if len(d.sources) > 0 {
		ip := d.sources[d.next.Add(1)%uint64(len(d.sources))]
		nd.LocalAddr = &net.TCPAddr{IP: ip}
	}
	return nd.DialContext(ctx, network, addr)
}

// Conn is one connected Socket.IO client.
type Conn struct {
	ws *websocket.Conn
}

// Connect opens a WebSocket, reads the Engine.IO open packet, sends CONNECT
// with the token and waits for the answer; ctx bounds the whole handshake.
func (d *Dialer) Connect(ctx context.Context, token string) (*Conn, error) {
	ws, resp, err := d.ws.DialContext(ctx, d.url, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("websocket handshake: HTTP %d: %w", resp.StatusCode, err)
		}
		return nil, fmt.Errorf("websocket handshake: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = ws.SetReadDeadline(dl)
		_ = ws.SetWriteDeadline(dl)
	}
	c := &Conn{ws: ws}
	if err := c.handshake(token); err != nil {
		_ = ws.Close()
		return nil, err
	}
	_ = ws.SetReadDeadline(time.Time{})
	_ = ws.SetWriteDeadline(time.Time{})
	return c, nil
}

func (c *Conn) handshake(token string) error {
	_, frame, err := c.ws.ReadMessage()
	if err != nil {
		return fmt.Errorf("read open packet: %w", err)
	}
	if _, err := parseOpen(frame); err != nil {
		return err
	}
	if err := c.ws.WriteMessage(websocket.TextMessage, connectFrame(token)); err != nil {
		return fmt.Errorf("send connect: %w", err)
	}
	for {
		_, frame, err := c.ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("read connect reply: %w", err)
		}
		switch {
		case len(frame) == 1 && frame[0] == eioPing:
			if err := c.pong(); err != nil {
				return err
			}
		case len(frame) == 1 && frame[0] == eioNoop:
		default:
			return parseConnectReply(frame)
		}
	}
}

func (c *Conn) pong() error {
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte{eioPong}); err != nil {
		return fmt.Errorf("send pong: %w", err)
	}
	return nil
}

// Serve reads until the connection ends, answering pings and handing each
// event to onEvent (from this goroutine: onEvent must not block). It
// returns nil when the server closed the session, else the read error.
func (c *Conn) Serve(onEvent func(name string, arg []byte)) error {
	for {
		_, frame, err := c.ws.ReadMessage()
		if err != nil {
			return err
		}
		if len(frame) == 0 {
			continue
		}
		switch frame[0] {
		case eioPing:
			if err := c.pong(); err != nil {
				return err
			}
		case eioClose:
			return nil
		case eioMessage:
			if len(frame) > 1 && frame[1] == sioDisconnect {
				return nil
			}
			if name, arg, ok := parseEvent(frame); ok {
				onEvent(name, arg)
			}
		}
	}
}

// Close ends the connection without ceremony.
func (c *Conn) Close() error { return c.ws.Close() }
