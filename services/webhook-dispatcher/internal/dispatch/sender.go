// Package dispatch delivers webhook events: the consumer of EVENTS fans each
// event out to delivery rows, the scheduler sends them with a bounded share
// of workers per webhook, the recorder writes outcomes in batches, and the
// poller takes due retries (and rows of crashed workers) from PostgreSQL.
package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/xpeditis/notify/pkg/tracing"
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
	Lookup         ssrf.Lookup  // nil: the system resolver
	Tracer         trace.Tracer // a span per attempt; nil: none
}

// Sender makes signed webhook requests.
type Sender struct {
	client  *http.Client
	timeout time.Duration
	tracer  trace.Tracer
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
	if o.Tracer == nil {
		o.Tracer = noop.NewTracerProvider().Tracer("")
	}
	return &Sender{
		timeout: o.Timeout,
		tracer:  o.Tracer,
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

// Outcome is what one request produced.
type Outcome struct {
	StatusCode int
	Duration   time.Duration
	Excerpt    string
	Err        string        // why the attempt failed, when it did without a 2xx
	RetryAfter time.Duration // from a Retry-After header, 0 when absent
}

// Success reports a 2xx answer.
func (o Outcome) Success() bool { return o.StatusCode >= 200 && o.StatusCode < 300 }

// Send signs body and POSTs it to url. The attempt is a client span, a
// child of the trace context ctx holds (the event's), and the request
// carries it as traceparent: an integrator that traces sees its handling
// in the event's trace.
func (s *Sender) Send(ctx context.Context, url, secret string, d webhook.Delivery, body []byte) (o Outcome) {
	ctx, span := s.tracer.Start(ctx, "POST webhook", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(semconv.HTTPRequestMethodPost, semconv.ServerAddress(hostOf(url)),
			attribute.String("notify.webhook.event", d.Event), attribute.String("notify.webhook.delivery_id", d.ID),
			attribute.Int("notify.webhook.attempt", d.Attempt)))
	defer func() {
		if o.StatusCode != 0 {
			span.SetAttributes(semconv.HTTPResponseStatusCode(o.StatusCode))
		}
		if !o.Success() {
			span.SetStatus(codes.Error, o.Err)
		}
		span.End()
	}()
	// start precedes the deadline, so that a request cut by the timeout
	// lasted the timeout.
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Outcome{Err: "invalid request: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	webhook.SetHeaders(req.Header, secret, d, body)
	tracing.InjectHTTP(ctx, req.Header)
	resp, err := s.client.Do(req)
	if err != nil {
		return Outcome{Duration: time.Since(start), Err: describe(err, s.timeout)}
	}
	defer resp.Body.Close()
	excerpt, readErr := io.ReadAll(io.LimitReader(resp.Body, MaxExcerpt))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
	o = Outcome{
		StatusCode: resp.StatusCode,
		Duration:   time.Since(start),
		Excerpt:    excerptOf(excerpt),
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		o.Err = "redirects are not followed"
	case !o.Success():
		o.Err = "HTTP " + strconv.Itoa(resp.StatusCode)
	case readErr != nil:
		// The receiver answered 2xx: the delivery counts as done even if the
		// rest of its body did not arrive.
		o.Excerpt += " [response body cut: " + describe(readErr, s.timeout) + "]"
	}
	return o
}

// excerptOf is the part of an answer kept in the delivery log, as valid
// UTF-8 without NUL characters, which a jsonb document cannot hold: one such
// answer would make its whole batch of results fail to record.
func excerptOf(b []byte) string {
	return strings.ReplaceAll(strings.ToValidUTF8(string(b), string(utf8.RuneError)), "\x00", string(utf8.RuneError))
}

// describe turns a transport error into a short reason for the delivery log.
func describe(err error, timeout time.Duration) string {
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
		return "refused: " + inner.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("timeout: no complete answer within %s", timeout)
	case errors.Is(err, context.Canceled):
		return "canceled: the dispatcher is shutting down"
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Op + ": " + op.Err.Error()
	}
	return err.Error()
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
