package problem_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/labstack/echo/v5"

	"github.com/xpeditis/notify/pkg/problem"
)

func TestFromMapsErrorsToStatuses(t *testing.T) {
	for name, tc := range map[string]struct {
		err    error
		status int
		detail string
	}{
		"problem":         {fmt.Errorf("wrapped: %w", problem.BadRequest("limit must be 1 to 100")), 400, "limit must be 1 to 100"},
		"echo 413":        {echo.ErrStatusRequestEntityTooLarge, 413, "request body is over the size limit"},
		"echo 404":        {echo.ErrNotFound, 404, "Not Found"},
		"client gone":     {fmt.Errorf("count unread: %w", context.Canceled), 499, "the client closed the request"},
		"anything else":   {errors.New("pq: connection refused"), 500, "internal error"},
		"echo http error": {echo.NewHTTPError(http.StatusMethodNotAllowed, "no"), 405, "no"},
	} {
		p := problem.From(tc.err)
		if p.Status != tc.status || p.Detail != tc.detail {
			t.Errorf("%s: %d %q, want %d %q", name, p.Status, p.Detail, tc.status, tc.detail)
		}
	}
}
