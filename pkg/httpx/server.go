package httpx

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/problem"
)

// NewServer returns the HTTP server of a process: h behind the body
// deadline, with the header, write and idle timeouts of t (a zero field
// takes its default).
//
// Connections that outlive a request manage their own deadlines: a
// WebSocket is hijacked (the upgrade clears the write deadline; the read
// deadline is cleared by the hijack), and a long-polling handler moves its
// write deadline past the time it holds the request.
func NewServer(h http.Handler, t config.HTTP) *http.Server {
	t = withDefaults(t)
	return &http.Server{
		Handler:           bodyDeadline(h, t),
		ReadHeaderTimeout: t.ReadHeaderTimeout,
		WriteTimeout:      t.WriteTimeout,
		IdleTimeout:       t.IdleTimeout,
	}
}

func withDefaults(t config.HTTP) config.HTTP {
	d := config.DefaultHTTP()
	if t.ReadHeaderTimeout <= 0 {
		t.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if t.BodyTimeout <= 0 {
		t.BodyTimeout = d.BodyTimeout
	}
	if t.BodyMinRate <= 0 {
		t.BodyMinRate = d.BodyMinRate
	}
	if t.WriteTimeout <= 0 {
		t.WriteTimeout = d.WriteTimeout
	}
	if t.IdleTimeout <= 0 {
		t.IdleTimeout = d.IdleTimeout
	}
	return t
}

// BodyDeadline is how long a body of size bytes may take to arrive.
func BodyDeadline(t config.HTTP, size int64) time.Duration {
	t = withDefaults(t)
	return t.BodyTimeout + time.Duration(size)*time.Second/time.Duration(t.BodyMinRate)
}

// bodyDeadline reads each request's body before the handler runs, within
// BodyDeadline of its announced size (MaxBodyBytes when chunked). A body
// that stalls is answered 408 and its connection closed, instead of holding
// the connection and its goroutine for as long as the client likes (any
// path, /healthz included: the server reads what a request announces); a
// body over MaxBodyBytes is answered 413, whatever its transfer encoding.
// Handlers then read a body that is already in memory, at most
// MaxBodyBytes, which they would have read anyway.
func bodyDeadline(next http.Handler, t config.HTTP) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		if r.ContentLength > MaxBodyBytes {
			refuse(w, r, problem.New(http.StatusRequestEntityTooLarge, "request body is over the size limit of %d bytes", MaxBodyBytes))
			return
		}
		size := r.ContentLength
		if size < 0 {
			size = MaxBodyBytes
		}
		wait := BodyDeadline(t, size)
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(wait)); err != nil {
			next.ServeHTTP(w, r) // not a network connection (a test recorder)
			return
		}
		// The buffer grows with what arrives, not with what is announced: a
		// client that announces 64 KiB and sends nothing costs next to nothing.
		var body bytes.Buffer
		_, err := body.ReadFrom(io.LimitReader(r.Body, MaxBodyBytes+1))
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			refuse(w, r, problem.New(http.StatusRequestTimeout, "the request body did not arrive within %s", wait))
			return
		case err != nil:
			refuse(w, r, problem.BadRequest("reading the request body: %v", err))
			return
		case body.Len() > MaxBodyBytes:
			refuse(w, r, problem.New(http.StatusRequestEntityTooLarge, "request body is over the size limit of %d bytes", MaxBodyBytes))
			return
		}
		_ = rc.SetReadDeadline(time.Time{})
		r.Body = io.NopCloser(&body)
		next.ServeHTTP(w, r)
	})
}

// refuse answers p and closes the connection: what is left of the body is
// not worth reading.
func refuse(w http.ResponseWriter, r *http.Request, p *problem.Problem) {
	w.Header().Set("Connection", "close")
	p.Instance = r.URL.Path
	problem.Write(w, p)
}
