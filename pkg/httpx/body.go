package httpx

import (
	"bytes"
	"errors"
	"io"
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/xpeditis/notify/pkg/problem"
)

// BufferBody reads the whole request body, within MaxBodyBytes, before the
// handler runs, so that an over-limit body answers 413 on every route it
// guards, whatever the transfer encoding. The body limit refuses a body
// announced with a Content-Length at once, but a chunked one only when it
// is read past the limit: a handler that decodes it would see a decoding
// error (a 400), and one that ignores its body would answer as if there
// were none.
func BufferBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		req := c.Request()
		if req.Body == nil || req.Body == http.NoBody || req.ContentLength == 0 {
			return next(c)
		}
		body, err := io.ReadAll(io.LimitReader(req.Body, MaxBodyBytes+1))
		switch {
		case len(body) > MaxBodyBytes || IsTooLarge(err):
			return problem.New(http.StatusRequestEntityTooLarge, "request body is over the size limit of %d bytes", MaxBodyBytes)
		case err != nil && echo.StatusCode(err) != 0:
			return err // a status the server chose (a body read timeout)
		case err != nil:
			return problem.BadRequest("request body could not be read: %v", err)
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		return next(c)
	}
}

// IsTooLarge reports whether err comes from reading a body past its limit.
func IsTooLarge(err error) bool {
	var maxErr *http.MaxBytesError
	return errors.As(err, &maxErr) || (err != nil && echo.StatusCode(err) == http.StatusRequestEntityTooLarge)
}
