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

// Dialer opens client connections over WebSocket, spreading them over
// several local source addresses: one address can open only as many
// connections to the server as there are ephemeral ports.
type Dialer struct {
	ws      websocket.Dialer
	url     string
	proto   protocol
	sources []net.IP
	next    atomic.Uint64
}

// NewDialer returns a dialer for the server at base (http://host:port or
// ws://host:port) speaking the named protocol (ProtocolSocketIO or
// ProtocolCentrifugo); the protocol's usual path is used when base has no
// path.
func NewDialer(base, protocolName string, sources []net.IP, handshakeTimeout time.Duration) (*Dialer, error) {
	proto, err := protocolNamed(protocolName)
	if err != nil {
		return nil, err
	}
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
		u.Path = proto.path()
	}
	u.RawQuery = proto.query()
	d := &Dialer{url: u.String(), proto: proto, sources: sources}
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

// Conn is one connected client.
type Conn struct {
	ws      *websocket.Conn
	proto   protocol
	session session
}

// Connect opens a WebSocket and authenticates with the token as the
// protocol does (Socket.IO: open packet, CONNECT; Centrifugo: connect
// command); ctx bounds the whole handshake.
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
	s, err := d.proto.handshake(ws, token)
	if err != nil {
		_ = ws.Close()
		return nil, err
	}
	_ = ws.SetReadDeadline(time.Time{})
	_ = ws.SetWriteDeadline(time.Time{})
	return &Conn{ws: ws, proto: d.proto, session: s}, nil
}

// Serve reads until the connection ends, answering the server's pings and
// handing each event to onEvent (from this goroutine: onEvent must not
// block). It returns nil when the server closed the session, else the read
// error.
func (c *Conn) Serve(onEvent func(name string, arg []byte)) error {
	for {
		_, frame, err := c.ws.ReadMessage()
		if err != nil {
			return err
		}
		done, err := c.proto.frame(c.ws, c.session, frame, onEvent)
		if done || err != nil {
			return err
		}
	}
}

// Close ends the connection without ceremony.
func (c *Conn) Close() error { return c.ws.Close() }

// protocol is what differs between the servers measured: where the
// WebSocket lives, how a client authenticates, and how frames carry pings
// and events.
type protocol interface {
	path() string
	query() string
	// handshake authenticates on a fresh WebSocket and returns what the
	// session needs to remember.
	handshake(ws *websocket.Conn, token string) (session, error)
	// frame handles one frame of a joined session: it answers pings and
	// hands events to onEvent; done reports that the server ended the
	// session.
	frame(ws *websocket.Conn, s session, frame []byte, onEvent func(name string, arg []byte)) (done bool, err error)
}

// session is what a protocol remembers of a handshake.
type session struct {
	pong bool // the server expects its pings answered (Centrifugo)
}

// Protocol names, as the coordinator passes them to the workers.
const (
	ProtocolSocketIO   = "socketio"   // Socket.IO v4: the gateway and the Node.js reference
	ProtocolCentrifugo = "centrifugo" // Centrifugo's JSON protocol
)

func protocolNamed(name string) (protocol, error) {
	switch name {
	case ProtocolSocketIO, "":
		return socketIO{}, nil
	case ProtocolCentrifugo:
		return centrifugo{}, nil
	}
	return nil, fmt.Errorf("unknown protocol %q (want %s or %s)", name, ProtocolSocketIO, ProtocolCentrifugo)
}
