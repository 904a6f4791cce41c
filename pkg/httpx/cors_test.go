package httpx_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/httpx"
	"github.com/xpeditis/notify/pkg/logx"
	"github.com/xpeditis/notify/pkg/testkit"
)

// serveAPI runs an API shaped as the services' (a group under /api/ behind
// RequireAuth, GET and PATCH on one path, a route outside /api/) with CORS
// for allowed, on a random port, and returns its base URL.
func serveAPI(t testing.TB, allowed []string) string {
	t.Helper()
	v, err := auth.NewVerifier(testkit.JWTConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := httpx.NewEcho(logx.Discard(), prometheus.NewRegistry())
	e.Use(httpx.CORS(allowed))
	g := e.Group("/api/v1/things", httpx.RequireAuth(v))
	g.GET("/:id", func(c *echo.Context) error { return c.String(http.StatusOK, "thing "+c.Param("id")) })
	g.PATCH("/:id", func(c *echo.Context) error { return c.String(http.StatusOK, "patched") })
	e.GET("/elsewhere", func(c *echo.Context) error { return c.String(http.StatusOK, "elsewhere") })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpx.NewServer(e, config.DefaultHTTP())
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// corsRequest sends method to url with the headers and returns the answer
// (body read and closed).
func corsRequest(t testing.TB, method, url string, headers map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func preflight(origin, method string) map[string]string {
	return map[string]string{"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": "authorization,content-type"}
}

func TestAnAllowedOriginsPreflightIsAnsweredWithTheAPIsMethodsAndHeaders(t *testing.T) {
	base := serveAPI(t, []string{"https://app.example"})
	resp, _ := corsRequest(t, http.MethodOptions, base+"/api/v1/things/42", preflight("https://app.example", "PATCH"))
	h := resp.Header
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("preflight: %d, want 204", resp.StatusCode)
	}
	if got := h.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
		t.Errorf("Access-Control-Allow-Origin %q", got)
	}
	if got := h.Get("Access-Control-Allow-Credentials"); got != "true" {
		t.Errorf("Access-Control-Allow-Credentials %q", got)
	}
	if got := h.Get("Access-Control-Allow-Methods"); got != "GET,POST,PATCH,DELETE" {
		t.Errorf("Access-Control-Allow-Methods %q, want the APIs' GET,POST,PATCH,DELETE", got)
	}
	if got := strings.ToLower(h.Get("Access-Control-Allow-Headers")); !strings.Contains(got, "authorization") || !strings.Contains(got, "content-type") {
		t.Errorf("Access-Control-Allow-Headers %q", got)
	}
	if got := h.Get("Access-Control-Max-Age"); got != "600" {
		t.Errorf("Access-Control-Max-Age %q", got)
	}
	if !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
		t.Errorf("Vary %q does not name Origin", h.Values("Vary"))
	}
}

func TestAnAllowedOriginReadsTheAnswerAndItsRetryAfterAndWWWAuthenticate(t *testing.T) {
	base := serveAPI(t, []string{"https://app.example"})
	tok, err := auth.Mint(testkit.JWTSecret, auth.MintOptions{UserID: "u", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	resp, body := corsRequest(t, http.MethodGet, base+"/api/v1/things/42", map[string]string{"Origin": "https://APP.example", "Authorization": "Bearer " + tok})
	if resp.StatusCode != http.StatusOK || body != "thing 42" {
		t.Fatalf("GET: %d %q", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://APP.example" {
		t.Errorf("Access-Control-Allow-Origin %q, want the request's origin", got)
	}
	if got := resp.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(got, "Retry-After") || !strings.Contains(got, "WWW-Authenticate") {
		t.Errorf("Access-Control-Expose-Headers %q", got)
	}
	// A 401 is readable too: the page learns that its token expired.
	resp, _ = corsRequest(t, http.MethodGet, base+"/api/v1/things/42", map[string]string{"Origin": "https://app.example"})
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("401 without CORS headers: %d %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

func TestAnotherOriginGetsNoCORSHeadersSoTheBrowserRefuses(t *testing.T) {
	base := serveAPI(t, []string{"https://app.example"})
	for _, origin := range []string{"https://evil.example", "https://app.example.evil.example", "null", "https://app.example:8443"} {
		resp, _ := corsRequest(t, http.MethodOptions, base+"/api/v1/things/42", preflight(origin, "PATCH"))
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("preflight from %s: Access-Control-Allow-Origin %q", origin, got)
		}
		if got := resp.Header.Get("Access-Control-Allow-Methods"); got != "" {
			t.Errorf("preflight from %s: Access-Control-Allow-Methods %q", origin, got)
		}
		resp, _ = corsRequest(t, http.MethodGet, base+"/api/v1/things/42", map[string]string{"Origin": origin})
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET from %s: %d, Access-Control-Allow-Origin %q", origin, resp.StatusCode, got)
		}
	}
}

func TestWithoutAListOnlyTheAPIsOwnOriginIsAllowedAndAStarAllowsAny(t *testing.T) {
	base := serveAPI(t, nil)
	own := base // the page and the API on one origin, as behind the proxy
	resp, _ := corsRequest(t, http.MethodOptions, base+"/api/v1/things/42", preflight(own, "PATCH"))
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != own {
		t.Errorf("own origin: Access-Control-Allow-Origin %q", got)
	}
	resp, _ = corsRequest(t, http.MethodOptions, base+"/api/v1/things/42", preflight("https://app.example", "PATCH"))
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("no list, another origin: Access-Control-Allow-Origin %q", got)
	}

	star := serveAPI(t, []string{"*"})
	resp, _ = corsRequest(t, http.MethodOptions, star+"/api/v1/things/42", preflight("https://anywhere.example", "GET"))
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://anywhere.example" || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("*: Access-Control-Allow-Origin %q, credentials %q", got, resp.Header.Get("Access-Control-Allow-Credentials"))
	}
	// Routes outside the REST API are not the middleware's (the gateway
	// answers CORS on its own paths).
	resp, _ = corsRequest(t, http.MethodGet, star+"/elsewhere", map[string]string{"Origin": "https://anywhere.example"})
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("/elsewhere: Access-Control-Allow-Origin %q", got)
	}
}
