// Package httpx builds the Echo instance every service serves on: problem+json
// errors, recovery, request logs, body limits and metrics (the health
// endpoints are pkg/app's).
package httpx

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v5"
	"github.com/labstack/echo/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/problem"
)

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 64 << 10

// NewRegistry returns a Prometheus registry with the Go and process
// collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// NewEcho returns an Echo with the shared middleware.
func NewEcho(log *slog.Logger, reg prometheus.Registerer) *echo.Echo {
	e := echo.NewWithConfig(echo.Config{Logger: log, HTTPErrorHandler: problem.ErrorHandler(log)})
	requests := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_request_duration_seconds",
		Help:    "HTTP request latency by route and status.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"method", "route", "status"})
	reg.MustRegister(requests)
	e.Use(middleware.Recover())
	e.Use(middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogStatus: true, LogURIPath: true, LogMethod: true, LogLatency: true, LogRoutePath: true, HandleError: true,
		LogValuesFunc: func(c *echo.Context, v middleware.RequestLoggerValues) error {
			route := v.RoutePath
			if route == "" {
				route = "unmatched"
			}
			requests.WithLabelValues(v.Method, route, strconv.Itoa(v.Status)).Observe(v.Latency.Seconds())
			level := slog.LevelDebug
			// 503 is an answer, not a failure: not ready, or shutting
			// down (whoever decided it says why).
			if v.Status >= 500 && v.Status != http.StatusServiceUnavailable {
				level = slog.LevelError
			}
			// Asked first: the arguments cost allocations even when the
			// level is off, as debug is in production.
			if ctx := c.Request().Context(); log.Enabled(ctx, level) {
				log.Log(ctx, level, "http request", "method", v.Method, "path", v.URIPath, "status", v.Status, "latency_ms", float64(v.Latency.Microseconds())/1000)
			}
			return nil
		},
	}))
	e.Use(middleware.BodyLimit(MaxBodyBytes))
	return e
}

// RequireAuth verifies the bearer token and stores its claims in the request
// context. Any failure is a 401 with the reason.
func RequireAuth(v *auth.Verifier) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			h := c.Request().Header.Get("Authorization")
			scheme, token, ok := strings.Cut(h, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="xpeditis-notify"`)
				return problem.Unauthorized("missing bearer token")
			}
			claims, err := v.Verify(strings.TrimSpace(token))
			if err != nil {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="xpeditis-notify", error="invalid_token"`)
				return problem.Unauthorized(strings.TrimPrefix(err.Error(), auth.ErrInvalidToken.Error()+": "))
			}
			c.SetRequest(c.Request().WithContext(auth.WithClaims(c.Request().Context(), claims)))
			return next(c)
		}
	}
}

// Claims returns the claims RequireAuth stored.
func Claims(c *echo.Context) auth.Claims {
	cl, _ := auth.FromContext(c.Request().Context())
	return cl
}
