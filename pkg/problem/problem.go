// Package problem writes errors as RFC 9457 problem details
// (application/problem+json) and is the one place that maps errors to HTTP
// statuses.
package problem

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v5"
)

// ContentType of every error response.
const ContentType = "application/problem+json"

// StatusClientClosedRequest is the status logged (nobody reads the answer)
// when the client went away before the response: not a server error.
const StatusClientClosedRequest = 499

// Problem is an RFC 9457 problem detail. It is also an error, so handlers
// return it.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

func (p *Problem) Error() string { return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail) }

// StatusCode lets Echo's middleware (logging, metrics) see the status.
func (p *Problem) StatusCode() int { return p.Status }

// New returns a problem with the standard title of status.
func New(status int, format string, args ...any) *Problem {
	title := http.StatusText(status)
	if status == StatusClientClosedRequest {
		title = "Client Closed Request"
	}
	return &Problem{Type: "about:blank", Title: title, Status: status, Detail: fmt.Sprintf(format, args...)}
}

// BadRequest is a 400 naming what is wrong with the request.
func BadRequest(format string, args ...any) *Problem {
	return New(http.StatusBadRequest, format, args...)
}

// NotFound is a 404. Resources of other users or organizations answer this
// too, so that ids cannot be probed.
func NotFound(what string) *Problem { return New(http.StatusNotFound, "%s not found", what) }

// Unauthorized is a 401 with the reason the credentials were refused.
func Unauthorized(reason string) *Problem { return New(http.StatusUnauthorized, "%s", reason) }

// Forbidden is a 403.
func Forbidden(reason string) *Problem { return New(http.StatusForbidden, "%s", reason) }

// From turns any error into a problem: problems pass through, errors that
// carry a status keep it, anything else is a 500 that hides its text.
func From(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	if errors.Is(err, context.Canceled) {
		return New(StatusClientClosedRequest, "the client closed the request")
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg := he.Message
		if he.Code == http.StatusRequestEntityTooLarge {
			msg = "request body is over the size limit"
		}
		if msg == "" {
			msg = http.StatusText(he.Code)
		}
		return New(he.Code, "%s", msg)
	}
	if status := echo.StatusCode(err); status != 0 {
		detail := http.StatusText(status)
		if status == http.StatusRequestEntityTooLarge {
			detail = "request body is over the size limit"
		}
		return New(status, "%s", detail)
	}
	return New(http.StatusInternalServerError, "internal error")
}

// Write sends p.
func Write(w http.ResponseWriter, p *Problem) {
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// ErrorHandler is Echo's error handler: every error leaves as problem+json;
// server errors are logged with their real text.
func ErrorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(c *echo.Context, err error) {
		if r, _ := echo.UnwrapResponse(c.Response()); r != nil && r.Committed {
			return
		}
		p := From(err)
		if p.Status >= 500 && p.Status != StatusClientClosedRequest {
			log.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
		}
		if p.Instance == "" {
			p2 := *p
			p2.Instance = c.Request().URL.Path
			p = &p2
		}
		Write(c.Response(), p)
	}
}
