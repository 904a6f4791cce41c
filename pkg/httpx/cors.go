package httpx

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v5"
	"github.com/labstack/echo/v5/middleware"
)

// OriginAllowed is the one rule, for the REST APIs (API_ALLOWED_ORIGINS)
// and the gateway (GATEWAY_ALLOWED_ORIGINS), of which browser pages may use
// a service: a request without Origin (not a browser, or a same-origin GET)
// always; a page whose origin is in allowed, compared without regard to
// case, or any page when allowed holds "*"; and a page served by the same
// host as the request (one origin behind a proxy, which keeps Host).
func OriginAllowed(allowed []string, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, o := range allowed {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// CORS answers the preflights of the REST API (routes under /api/) and
// lets pages that OriginAllowed accepts read its answers: the origin is
// echoed with credentials allowed (as the gateway does, so that a "*" also
// works for a page sending cookies), the methods are those the APIs use,
// and the headers a page may read include Retry-After (429) and
// WWW-Authenticate (401). A page of another origin gets no CORS headers, so
// the browser keeps the answer from it; the request itself needs a bearer
// token, which such a page can only send after a preflight, so it never
// reaches a handler. The gateway's own paths answer CORS themselves.
func CORS(allowed []string) echo.MiddlewareFunc {
	return middleware.CORSWithConfig(middleware.CORSConfig{
		Skipper: func(c *echo.Context) bool { return !strings.HasPrefix(c.Request().URL.Path, "/api/") },
		UnsafeAllowOriginFunc: func(c *echo.Context, origin string) (string, bool, error) {
			return origin, OriginAllowed(allowed, c.Request()), nil
		},
		AllowMethods:     []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete},
		AllowHeaders:     []string{"Authorization", "Content-Type"},
		ExposeHeaders:    []string{"Retry-After", "WWW-Authenticate"},
		AllowCredentials: true,
		MaxAge:           600,
	})
}
