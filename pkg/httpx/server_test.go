package httpx_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/httpx"
	"github.com/xpeditis/notify/pkg/logx"
)

// serve runs NewServer with the shared Echo (/healthz and an echoing POST)
// on a random port until cleanup and returns its address.
func serve(t testing.TB, limits config.HTTP) string {
	t.Helper()
	e := httpx.NewEcho(logx.Discard(), prometheus.NewRegistry())
	e.GET("/healthz", func(c *echo.Context) error { return c.String(http.StatusOK, "ok") })
	e.POST("/echo", func(c *echo.Context) error {
		b, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return err
		}
		return c.String(http.StatusOK, string(b))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpx.NewServer(e, limits)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// rawRequest writes head (the request line and headers, without the blank
// line) and body, then reads the answer's status line and headers; it
// returns the status, how long the answer took, and the connection.
func rawRequest(t testing.TB, addr, head, body string) (int, time.Duration, net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	start := time.Now()
	if _, err := io.WriteString(c, head+"\r\n\r\n"+body); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	took := time.Since(start)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, took, c, br
}

// assertClosed fails unless the server closed c.
func assertClosed(t testing.TB, c net.Conn, br *bufio.Reader) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("connection still open after the answer (read %d, %v)", n, err)
	}
}

// A request that announces a body and never sends it is answered 408 within
// the body deadline and its connection closed, on any path, whether the
// body has a length or is chunked.
func TestAStalledBodyIsCutWith408(t *testing.T) {
	limits := config.HTTP{BodyTimeout: 300 * time.Millisecond, BodyMinRate: 1 << 20}
	addr := serve(t, limits)
	deadline := httpx.BodyDeadline(limits, httpx.MaxBodyBytes)
	for _, head := range []string{
		"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100",
		"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100",
		"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked",
		"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 10",
	} {
		t.Run(strings.SplitN(head, "\r\n", 2)[0], func(t *testing.T) {
			status, took, c, br := rawRequest(t, addr, head, "half")
			if status != http.StatusRequestTimeout {
				t.Errorf("status %d, want 408", status)
			}
			if took < limits.BodyTimeout || took > deadline+time.Second {
				t.Errorf("answered after %s, want within the body deadline (%s to %s)", took, limits.BodyTimeout, deadline)
			}
			assertClosed(t, c, br)
		})
	}
}

// A body that arrives is what the handler reads, and the connection stays
// open for the next request.
func TestABodyThatArrivesReachesTheHandler(t *testing.T) {
	addr := serve(t, config.HTTP{BodyTimeout: time.Second})
	body := strings.Repeat("b", 40<<10)
	status, _, c, br := rawRequest(t, addr, fmt.Sprintf("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: %d", len(body)), body)
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("second request on the connection: %v %v", resp, err)
	}
}

// A body over the limit answers 413 whatever its transfer encoding.
func TestABodyOverTheLimitAnswers413(t *testing.T) {
	addr := serve(t, config.HTTP{})
	over := strings.Repeat("x", httpx.MaxBodyBytes+1)
	for name, req := range map[string][2]string{
		"length":  {fmt.Sprintf("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d", len(over)), over},
		"chunked": {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked", fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(over), over)},
	} {
		t.Run(name, func(t *testing.T) {
			status, _, c, br := rawRequest(t, addr, req[0], req[1])
			if status != http.StatusRequestEntityTooLarge {
				t.Errorf("status %d, want 413", status)
			}
			assertClosed(t, c, br)
		})
	}
}

// A kept-alive connection is closed after the idle timeout.
func TestAnIdleConnectionIsClosed(t *testing.T) {
	addr := serve(t, config.HTTP{IdleTimeout: 200 * time.Millisecond})
	status, _, c, br := rawRequest(t, addr, "GET /healthz HTTP/1.1\r\nHost: x", "")
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	assertClosed(t, c, br)
}
