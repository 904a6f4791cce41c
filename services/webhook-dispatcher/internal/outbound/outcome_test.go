package outbound

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// Each kind of result gives its log outcome (the metric label), its reason
// and its retry decision, and transport errors are typed, not parsed.
func TestResultKindsDeriveLabelReasonAndRetry(t *testing.T) {
	cases := []struct {
		r         Result
		label     string
		reason    string
		retryable bool
	}{
		{Result{Kind: OK, StatusCode: 204}, "success", "", false},
		{Result{Kind: HTTPStatus, StatusCode: 503}, "http_error", "HTTP 503", true},
		{Result{Kind: Redirect, StatusCode: 302}, "redirect", "redirects are not followed", true},
		{Result{Kind: Refused, Detail: "127.0.0.1 is loopback"}, "refused", "refused: 127.0.0.1 is loopback", false},
		{Result{Kind: Timeout, timeout: 10 * time.Second}, "timeout", "timeout: no complete answer within 10s", true},
		{Result{Kind: Network, Detail: "dial: connection refused"}, "network_error", "dial: connection refused", true},
		{Result{Kind: Cancelled}, "cancelled", "cancelled: the request was stopped on our side", true},
	}
	for _, c := range cases {
		if got := c.r.Kind.Label(); got != c.label {
			t.Errorf("%+v: label %q, want %q", c.r, got, c.label)
		}
		if got := c.r.Reason(); got != c.reason {
			t.Errorf("%+v: reason %q, want %q", c.r, got, c.reason)
		}
		if got := c.r.Retryable(); got != c.retryable {
			t.Errorf("%+v: retryable %v, want %v", c.r, got, c.retryable)
		}
		if a := c.r.Attempt(2, true); a.Outcome != c.label || a.Error != c.reason || a.Number != 2 || !a.Manual {
			t.Errorf("%+v: attempt %+v", c.r, a)
		}
	}
	if len(Labels()) != len(cases) {
		t.Fatalf("Labels() = %v, want one per kind", Labels())
	}
	typed := map[error]Kind{
		context.DeadlineExceeded: Timeout,
		context.Canceled:         Cancelled,
		&net.OpError{Op: "dial", Err: errors.New("connection refused")}: Network,
	}
	for err, want := range typed {
		if got := classify(err).Kind; got != want {
			t.Errorf("classify(%v) = %v, want %v", err, got, want)
		}
	}
}
