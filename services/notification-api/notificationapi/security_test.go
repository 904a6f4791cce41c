package notificationapi_test

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/xpeditis/notify/pkg/logx"
	"github.com/xpeditis/notify/pkg/testkit"
)

// logBuffer collects a service's JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// errors returns the ERROR lines logged so far.
func (b *logBuffer) errors() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return grepLines(b.buf.Bytes(), `"level":"ERROR"`)
}

func startWithLogs(t testing.TB) (*harness, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	return startLogging(t, testkit.StartNATS(t), testkit.Database(t), logx.New(logs, "debug")), logs
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
