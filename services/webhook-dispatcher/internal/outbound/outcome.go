package outbound

import (
	"fmt"
	"strconv"
	"time"

	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/store"
)

// Kind is what kind of answer an attempt got. The delivery log's outcome,
// the metric label, the log text and whether the attempt is worth
// repeating all derive from it.
type Kind int

// Kinds of an attempt's result.
const (
	OK         Kind = iota // a 2xx answer
	HTTPStatus             // an answer with a status other than 2xx or 3xx
	Redirect               // a 3xx answer: redirects are never followed
	Refused                // the SSRF guard refused the address dialled
	Timeout                // no complete answer within WEBHOOK_TIMEOUT
	Network                // the connection failed (DNS, refused, reset, TLS)
	Cancelled              // the request was cancelled on our side
)

// Label is the outcome in the delivery log and the metric label.
func (k Kind) Label() string {
	switch k {
	case OK:
		return store.OutcomeSuccess
	case HTTPStatus:
		return store.OutcomeHTTPError
	case Redirect:
		return store.OutcomeRedirect
	case Refused:
		return store.OutcomeRefused
	case Timeout:
		return store.OutcomeTimeout
	case Cancelled:
		return store.OutcomeCancelled
	}
	return store.OutcomeNetworkError
}

// Labels lists every label, for metrics that start at zero.
func Labels() []string {
	var out []string
	for k := OK; k <= Cancelled; k++ {
		out = append(out, k.Label())
	}
	return out
}

// Result is what one request produced.
type Result struct {
	Kind       Kind
	StatusCode int // the answer's status, 0 when there was no answer
	Duration   time.Duration
	Excerpt    string
	Detail     string        // the cause of a Refused or Network result
	RetryAfter time.Duration // from a Retry-After header, 0 when absent

	timeout time.Duration // the sender's, named by a Timeout's reason
}

// Success reports a 2xx answer.
func (r Result) Success() bool { return r.Kind == OK }

// Retryable reports whether another automatic attempt may succeed: every
// failure but a refused address, which the guard refuses again (the
// integrator changes the URL, then retries by hand).
func (r Result) Retryable() bool { return r.Kind != OK && r.Kind != Refused }

// Reason is why the attempt failed, for the delivery log and the service's
// log; empty on success.
func (r Result) Reason() string {
	switch r.Kind {
	case OK:
		return ""
	case HTTPStatus:
		return "HTTP " + strconv.Itoa(r.StatusCode)
	case Redirect:
		return "redirects are not followed"
	case Refused:
		return "refused: " + r.Detail
	case Timeout:
		return fmt.Sprintf("timeout: no complete answer within %s", r.timeout)
	case Cancelled:
		return "cancelled: the request was stopped on our side"
	}
	return r.Detail
}

// Attempt is the delivery log's record of the result of attempt n.
func (r Result) Attempt(n int, manual bool) store.Attempt {
	return store.Attempt{
		Number: n, At: time.Now().Add(-r.Duration).UTC(), DurationMs: r.Duration.Milliseconds(), Outcome: r.Kind.Label(),
		StatusCode: r.StatusCode, Error: r.Reason(), ResponseExcerpt: r.Excerpt, Manual: manual,
	}
}
