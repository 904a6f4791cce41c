package notificationapi_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/xpeditis/notify/pkg/logx"
	"github.com/xpeditis/notify/pkg/testkit"
)

// errors returns the ERROR lines logged so far.
func (b *logBuffer) errors() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return grepLines(b.buf.Bytes(), `"level":"ERROR"`)
}

func startWithLogs(t testing.TB) (*harness, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	return startWith(t, testkit.StartNATS(t), testkit.Database(t), logx.New(logs, "debug"), nil), logs
}

// A cursor the API never returned (a negative or absurd time, another
// shape) is the client's mistake: 400, and nothing logged as an error. A
// negative time used to reach PostgreSQL, fail there and answer 500.
func TestCursorsTheAPINeverReturnedAnswer400WithoutLoggingAnError(t *testing.T) {
	h, logs := startWithLogs(t)
	h.seed("cursor", 3)
	tok := token(t, "cursor")
	id := "019abcde-0123-7456-89ab-0123456789ab"
	raw := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for name, cursor := range map[string]string{
		"negative time":      raw("-1y2p0ij32e8e8." + id),
		"negative small":     raw("-zzzzzzzzz." + id),
		"largest time":       raw("1y2p0ij32e8e7." + id),
		"year 2300":          raw("2ujdq00npc0." + id),
		"leading zeros":      raw("000hegjxa5mo0." + id),
		"braced id":          raw("hegjxa5mo0.{" + id + "}"),
		"no id":              raw("hegjxa5mo0."),
		"three parts":        raw("hegjxa5mo0." + id + ".x"),
		"binary":             raw("\x00\xff\x10"),
		"standard base64":    base64.StdEncoding.EncodeToString([]byte("hegjxa5mo0." + id)),
		"a webhook's cursor": base64.RawURLEncoding.EncodeToString(make([]byte, 16)),
	} {
		r := h.do("GET", "/api/v1/notifications?cursor="+url.QueryEscape(cursor), tok, "")
		var p struct{ Detail string }
		r.decode(t, &p)
		if r.Status != http.StatusBadRequest || !strings.HasPrefix(r.ContentType, "application/problem+json") || !strings.Contains(p.Detail, "cursor") {
			t.Errorf("%s: %d %s %q, want 400 problem+json about the cursor", name, r.Status, r.ContentType, p.Detail)
		}
	}
	if lines := logs.errors(); lines != "" {
		t.Fatalf("bad cursors logged errors:\n%s", lines)
	}
}

// chunked sends a body of n bytes without a Content-Length (chunked
// transfer encoding) and returns the response.
func chunked(t testing.TB, method, url, tok string, n int) response {
	t.Helper()
	body := io.MultiReader(strings.NewReader(`{"x":"`), strings.NewReader(strings.Repeat("a", n)), strings.NewReader(`"}`))
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1 // unknown: net/http sends it chunked
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: b}
}

// A body over the limit answers 413 on every route, also when it comes
// chunked (no Content-Length): the routes that take no body used to answer
// as if there were none.
func TestOverLimitChunkedBodiesAnswer413OnEveryRoute(t *testing.T) {
	h := start(t)
	rows := h.seed("big", 2)
	tok := token(t, "big")
	for _, rt := range [][2]string{
		{"PATCH", "/api/v1/notifications/read-all"},
		{"PATCH", "/api/v1/notifications/" + rows[0].ID.String() + "/read"},
		{"DELETE", "/api/v1/notifications/" + rows[1].ID.String()},
		{"GET", "/api/v1/notifications"},
	} {
		r := chunked(t, rt[0], h.base+rt[1], tok, 100<<10)
		checkAgainstOpenAPI(t, rt[0], rt[1], r)
		if r.Status != http.StatusRequestEntityTooLarge || !strings.HasPrefix(r.ContentType, "application/problem+json") {
			t.Errorf("%s %s with a chunked 100 KiB body: %d %s, want 413 problem+json", rt[0], rt[1], r.Status, r.ContentType)
		}
	}
	// Under the limit, chunked bodies are read and ignored as before.
	if r := chunked(t, "PATCH", h.base+"/api/v1/notifications/"+rows[0].ID.String()+"/read", tok, 1<<10); r.Status != http.StatusOK {
		t.Fatalf("a small chunked body: %d %s", r.Status, r.Body)
	}
	if n := h.unread(tok); n != 1 {
		t.Fatalf("unread %d after the refused requests and one read, want 1", n)
	}
}

// Each user's changes are rate limited: past the burst, 429 with
// Retry-After, while another user is not affected and reads stay open.
func TestChangesAreRateLimitedPerUser(t *testing.T) {
	h := startWith(t, testkit.StartNATS(t), testkit.Database(t), testkit.Logger(), map[string]string{"API_WRITES_PER_MINUTE": "1", "API_WRITE_BURST": "3"})
	rows := h.seed("busy", 4)
	tok := token(t, "busy")
	for i, rt := range [][2]string{
		{"PATCH", "/api/v1/notifications/" + rows[0].ID.String() + "/read"},
		{"PATCH", "/api/v1/notifications/read-all"},
		{"DELETE", "/api/v1/notifications/" + rows[1].ID.String()},
	} {
		if r := h.do(rt[0], rt[1], tok, ""); r.Status >= 300 {
			t.Fatalf("change %d of the burst: %d %s", i+1, r.Status, r.Body)
		}
	}
	for _, rt := range [][2]string{
		{"PATCH", "/api/v1/notifications/" + rows[2].ID.String() + "/read"},
		{"PATCH", "/api/v1/notifications/read-all"},
		{"DELETE", "/api/v1/notifications/" + rows[3].ID.String()},
	} {
		resp := rawDo(t, rt[0], h.base+rt[1], tok)
		r := response{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: resp.body}
		checkAgainstOpenAPI(t, rt[0], rt[1], r)
		secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if r.Status != http.StatusTooManyRequests || !strings.HasPrefix(r.ContentType, "application/problem+json") || err != nil || secs < 1 || secs > 60 {
			t.Errorf("%s %s past the burst: %d %s Retry-After %q, want 429 problem+json with Retry-After", rt[0], rt[1], r.Status, r.ContentType, resp.Header.Get("Retry-After"))
		}
	}
	if h.count("SELECT count(*) FROM notifications WHERE user_id = 'busy'") != 3 {
		t.Fatal("a refused DELETE deleted")
	}
	if l := h.list(tok, ""); len(l.Data) != 3 {
		t.Fatalf("reads are limited too: %d rows", len(l.Data))
	}
	other := h.seed("other", 1)
	if r := h.do("PATCH", "/api/v1/notifications/"+other[0].ID.String()+"/read", token(t, "other"), ""); r.Status != http.StatusOK {
		t.Fatalf("another user is limited by the first one's changes: %d", r.Status)
	}
}

type rawResponse struct {
	*http.Response
	body []byte
}

func rawDo(t testing.TB, method, url, tok string) rawResponse {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rawResponse{Response: resp, body: b}
}
