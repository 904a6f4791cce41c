package webhookdispatcher_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/testkit"
)

// portalCall sends a request to the portal with the headers a browser page
// of the portal would send (Origin: this host), plus extra, and the
// session cookie when given.
func (h *harness) portalCall(method, path, cookie string, body string, extra ...string) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", h.base)
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			req.Header.Del(extra[i])
		} else {
			req.Header.Set(extra[i], extra[i+1])
		}
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	h.t.Cleanup(func() { res.Body.Close() })
	return res
}

func detailOf(t *testing.T, res *http.Response) string {
	t.Helper()
	var p problemOut
	_ = json.NewDecoder(res.Body).Decode(&p)
	return p.Detail
}

// The page carries no inline script or style and says so in its policy;
// the session cookie is out of reach of scripts and other sites, is not
// accepted by the bearer API, and changes need this origin.
func TestPortalSessionIsSafe(t *testing.T) {
	h := newHarness(t, testConfig(t))
	org := testkit.UniqueID("org")

	res := h.portalCall(http.MethodGet, "/portal/", "", "")
	page, _ := io.ReadAll(res.Body)
	csp := res.Header.Get("Content-Security-Policy")
	if res.StatusCode != http.StatusOK || !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-inline") {
		t.Fatalf("GET /portal/: %d, Content-Security-Policy %q", res.StatusCode, csp)
	}
	scripts := regexp.MustCompile(`<script([^>]*)>([^<]*)</script>`).FindAllSubmatch(page, -1)
	for _, m := range scripts {
		if !strings.Contains(string(m[1]), "src=") || strings.TrimSpace(string(m[2])) != "" {
			t.Errorf("inline script in the portal page: %s", m[0])
		}
	}
	if len(scripts) == 0 || regexp.MustCompile(`\son[a-z]+=|\sstyle=|<style`).Match(page) {
		t.Fatalf("the portal page has no script, or an inline handler or style:\n%s", page)
	}
	for _, asset := range []string{"/portal/assets/portal.js", "/portal/assets/portal.css"} {
		if r := h.portalCall(http.MethodGet, asset, "", ""); r.StatusCode != http.StatusOK || r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("GET %s: %d", asset, r.StatusCode)
		}
	}

	// Sign-in: the cookie.
	res = h.portalCall(http.MethodPost, "/portal/session", "", `{"token":"`+token(t, org, "MANAGER")+`"}`)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("sign in: %d %s", res.StatusCode, detailOf(t, res))
	}
	raw := res.Header.Get("Set-Cookie")
	for _, want := range []string{"notify_portal=", "Path=/portal/", "HttpOnly", "SameSite=Strict", "Max-Age=3600"} {
		if !strings.Contains(raw, want) {
			t.Errorf("Set-Cookie %q lacks %s", raw, want)
		}
	}
	if strings.Contains(raw, "Secure") {
		t.Errorf("Set-Cookie %q is Secure over plain HTTP: the browser would never send it back", raw)
	}
	cookie := strings.SplitN(raw, ";", 2)[0]
	behindTLS := h.portalCall(http.MethodPost, "/portal/session", "", `{"token":"`+token(t, org, "ADMIN")+`"}`, "X-Forwarded-Proto", "https")
	if !strings.Contains(behindTLS.Header.Get("Set-Cookie"), "Secure") {
		t.Errorf("behind a TLS proxy, Set-Cookie %q is not Secure", behindTLS.Header.Get("Set-Cookie"))
	}
	if r := h.portalCall(http.MethodGet, "/portal/api/webhooks", cookie, ""); r.StatusCode != http.StatusOK {
		t.Fatalf("GET /portal/api/webhooks with the session: %d", r.StatusCode)
	}

	for name, tc := range map[string]struct {
		method, path, cookie, body string
		headers                    []string
		status                     int
		detail                     string
	}{
		"a reader signs in":            {http.MethodPost, "/portal/session", "", `{"token":"` + token(t, org, "USER") + `"}`, nil, 403, `role "USER" cannot manage webhooks; the portal is for ADMIN, MANAGER`},
		"a bad token":                  {http.MethodPost, "/portal/session", "", `{"token":"not-a-jwt"}`, nil, 401, "token: token is malformed"},
		"a token of no organization":   {http.MethodPost, "/portal/session", "", `{"token":"` + token(t, "", "ADMIN") + `"}`, nil, 403, "no organizationId"},
		"sign-in from another site":    {http.MethodPost, "/portal/session", "", `{"token":"` + token(t, org, "ADMIN") + `"}`, []string{"Origin", "https://evil.example"}, 403, "is not this host"},
		"a change without Origin":      {http.MethodPost, "/portal/api/webhooks", cookie, `{}`, []string{"Origin", ""}, 403, "no Origin header"},
		"a change from another site":   {http.MethodPost, "/portal/api/webhooks", cookie, `{}`, []string{"Origin", "https://evil.example"}, 403, "is not this host"},
		"a cross-site fetch":           {http.MethodPost, "/portal/api/webhooks", cookie, `{}`, []string{"Sec-Fetch-Site", "cross-site"}, 403, "Sec-Fetch-Site: cross-site"},
		"no cookie":                    {http.MethodGet, "/portal/api/webhooks", "", "", nil, 401, "not signed in"},
		"a forged cookie":              {http.MethodGet, "/portal/api/webhooks", cookie[:len(cookie)-4] + "AAAA", "", nil, 401, "expired or is not valid"},
		"the cookie on the bearer API": {http.MethodGet, "/api/v1/webhooks", cookie, "", nil, 401, "missing bearer token"},
	} {
		r := h.portalCall(tc.method, tc.path, tc.cookie, tc.body, tc.headers...)
		if d := detailOf(t, r); r.StatusCode != tc.status || !strings.Contains(d, tc.detail) {
			t.Errorf("%s: %d %q, want %d mentioning %q", name, r.StatusCode, d, tc.status, tc.detail)
		}
	}

	// The REST APIs' CORS stops at /api/: no page of another origin may
	// read the portal's answers, or preflight its changes.
	pre := h.portalCall(http.MethodOptions, "/portal/api/webhooks", cookie, "", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
	get := h.portalCall(http.MethodGet, "/portal/api/webhooks", cookie, "", "Origin", "https://evil.example")
	api := h.portalCall(http.MethodGet, "/api/v1/webhooks", "", "", "Origin", "https://evil.example")
	if api.Header.Get("Access-Control-Allow-Origin") != "https://evil.example" {
		t.Fatalf("API_ALLOWED_ORIGINS=* opens no CORS on the REST API: the check below would prove nothing")
	}
	for _, r := range []*http.Response{pre, get} {
		if v := r.Header.Get("Access-Control-Allow-Origin"); v != "" {
			t.Errorf("%s /portal/api/webhooks from another origin: Access-Control-Allow-Origin %q", r.Request.Method, v)
		}
	}

	// Signing out clears the cookie.
	out := h.portalCall(http.MethodDelete, "/portal/session", cookie, "")
	if out.StatusCode != http.StatusNoContent || !strings.Contains(out.Header.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("sign out: %d, Set-Cookie %q", out.StatusCode, out.Header.Get("Set-Cookie"))
	}
}

// portalControl is what the browser test drives besides the page: events
// published for the organization, and the receiver's answers.
func portalControl(t *testing.T, h *harness, rcv *receiver, org string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var out any
		switch r.URL.Path {
		case "/publish":
			data, _ := structpb.NewStruct(map[string]any{"bookingId": "BK-" + strconv.Itoa(rcv.count())})
			ev := &contract.Event{Id: uuid.NewString(), Type: r.URL.Query().Get("type"), OrganizationId: org, OccurredAt: timestamppb.Now(), Data: data}
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			defer cancel()
			if _, err := h.pub.Publish(ctx, ev); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			out = map[string]string{"eventId": ev.Id}
		case "/answer":
			code, err := strconv.Atoi(r.URL.Query().Get("status"))
			if err != nil {
				http.Error(w, "status: "+err.Error(), http.StatusBadRequest)
				return
			}
			body := r.URL.Query().Get("body")
			rcv.setAnswer(func(int) (int, string) { return code, body })
			out = map[string]int{"status": code}
		case "/received":
			var list []map[string]any
			for _, got := range rcv.requests() {
				hs := map[string]string{}
				for k := range got.Header {
					hs[k] = got.Header.Get(k)
				}
				list = append(list, map[string]any{"headers": hs, "body": string(got.Body)})
			}
			out = list
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// The portal in headless Chromium (internal/portal/e2e/portal.test.mjs)
// against this dispatcher and a real receiver: create a webhook, copy its
// secret, test it, see a delivery with its attempts, retry it, edit,
// disable, at 390 px; refusals for a reader and for another
// organization's webhook. PORTAL_SCREENSHOTS=<dir> saves the README's
// screenshots there.
func TestPortalInChromium(t *testing.T) {
	h := newHarness(t, testConfig(t))
	rcv := newReceiver(t)
	org := testkit.UniqueID("org")
	other := testkit.UniqueID("org")
	otherHook := h.createWebhook(token(t, other, "ADMIN"), rcv.srv.URL+"/other", "BOOKING_CREATED")
	ctl := portalControl(t, h, rcv, org)
	env := []string{
		"PORTAL_URL=" + h.base, "CONTROL_URL=" + ctl.URL, "RECEIVER_URL=" + rcv.srv.URL,
		"TOKEN_WRITER=" + token(t, org, "ADMIN"), "TOKEN_READER=" + token(t, org, "USER"),
		"OTHER_WEBHOOK_ID=" + otherHook.ID,
	}
	if dir := os.Getenv("PORTAL_SCREENSHOTS"); dir != "" {
		env = append(env, "SCREENSHOT_DIR="+dir)
	}
	testkit.BrowserTest(t, "../internal/portal/e2e", "portal.test.mjs", 4*time.Minute, env...)
	if got := h.webhook(token(t, other, "ADMIN"), otherHook.ID); got.Status != "ACTIVE" || got.URL != rcv.srv.URL+"/other" {
		t.Fatalf("the other organization's webhook changed: %+v", got)
	}
}
