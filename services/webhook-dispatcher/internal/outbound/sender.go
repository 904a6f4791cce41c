// Package outbound makes the requests of webhook deliveries: it encodes
// the body an integrator receives (Body), signs and sends it (Sender), and
// types what came back (Result, Kind). The delivery engine and the REST
// API's test and retry both go through it.
package outbound

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/xpeditis/notify/pkg/webhook"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/ssrf"
)

// MaxExcerpt bounds the stored response excerpt.
const MaxExcerpt = 4096

// drainLimit is how much more of a response is read, and thrown away, so
// that its connection can be reused.
const drainLimit = 64 << 10

// UserAgent of outbound requests.
const UserAgent = "Xpeditis-Webhooks/1"

// SenderOptions configure outbound requests.
type SenderOptions struct {
	ConnectTimeout time.Duration
	Timeout        time.Duration // whole request, body included
	Guard          ssrf.Guard
	Lookup         ssrf.Lookup // nil: the system resolver
}

// Sender makes signed webhook requests.
type Sender struct {
	client  *http.Client
	timeout time.Duration
}

// NewSender builds a sender whose transport dials through the SSRF guard and
// never follows redirects.
func NewSender(o SenderOptions) *Sender {
	tr := &http.Transport{
		DialContext:           o.Guard.Dialer(o.ConnectTimeout, o.Lookup),
		TLSHandshakeTimeout:   o.ConnectTimeout,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     true,
		Proxy:                 nil, // a proxy would dial on our behalf, past the guard
	}
	return &Sender{
		timeout: o.Timeout,
		client: &http.Client{
			Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
}

// Close drops idle connections.
func (s *Sender) Close() { s.client.CloseIdleConnections() }

// Signing is the secret a request is signed with and, during a rotation's
// overlap, the previous one (see webhook.SetHeadersRotating).
type Signing struct {
	Secret   string
	Previous string // empty outside an overlap
}

// Send signs body and POSTs it to url.
func (s *Sender) Send(ctx context.Context, url string, sig Signing, d webhook.Delivery, body []byte) Result {
	// start precedes the deadline, so that a request cut by the timeout
	// lasted the timeout.
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Result{Kind: Network, Detail: "invalid request: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	webhook.SetHeadersRotating(req.Header, sig.Secret, sig.Previous, d, body)
	resp, err := s.client.Do(req)
	if err != nil {
		r := classify(err)
		r.Duration, r.timeout = time.Since(start), s.timeout
		return r
	}
	defer resp.Body.Close()
	excerpt, readErr := io.ReadAll(io.LimitReader(resp.Body, MaxExcerpt))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
	r := Result{
		Kind:       kindOfStatus(resp.StatusCode),
		StatusCode: resp.StatusCode,
		Duration:   time.Since(start),
		Excerpt:    excerptOf(excerpt),
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		timeout:    s.timeout,
	}
	if r.Kind == OK && readErr != nil {
		// The receiver answered 2xx: the delivery counts as done even if the
		// rest of its body did not arrive.
		cut := classify(readErr)
		cut.timeout = s.timeout
		r.Excerpt += " [response body cut: " + cut.Reason() + "]"
	}
	return r
}

func kindOfStatus(code int) Kind {
	switch {
	case code >= 200 && code < 300:
		return OK
	case code >= 300 && code < 400:
		return Redirect
	}
	return HTTPStatus
}

// excerptOf is the part of an answer kept in the delivery log, as valid
// UTF-8 without NUL characters, which a jsonb document cannot hold: one such
// answer would make its whole batch of results fail to record.
func excerptOf(b []byte) string {
	return strings.ReplaceAll(strings.ToValidUTF8(string(b), string(utf8.RuneError)), "\x00", string(utf8.RuneError))
}

// classify types a transport error.
func classify(err error) Result {
	var ne net.Error
	switch {
	case errors.Is(err, ssrf.ErrBlocked):
		// The guard's own error names the address and its class; the
		// layers around it only repeat the dial.
		inner := err
		for e := err; e != nil; e = errors.Unwrap(e) {
			if e != ssrf.ErrBlocked && errors.Is(e, ssrf.ErrBlocked) {
				inner = e
			}
		}
		return Result{Kind: Refused, Detail: inner.Error()}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return Result{Kind: Timeout}
	case errors.Is(err, context.Canceled):
		return Result{Kind: Cancelled}
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return Result{Kind: Network, Detail: op.Op + ": " + op.Err.Error()}
	}
	return Result{Kind: Network, Detail: err.Error()}
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, 1<<31)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
