package webhookdispatcher_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/xpeditis/notify/pkg/testkit"
)

// chunked sends a JSON body of about n bytes without a Content-Length
// (net/http sends it chunked) and returns the status and problem.
func (h *harness) chunked(method, path, tok string, n int) (int, problemOut) {
	h.t.Helper()
	body := io.MultiReader(strings.NewReader(`{"description":"`), strings.NewReader(strings.Repeat("a", n)), strings.NewReader(`"}`))
	req, err := http.NewRequest(method, h.base+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var p problemOut
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/problem+json") {
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
			h.t.Fatal(err)
		}
	}
	return resp.StatusCode, p
}

// An over-limit body answers 413 whatever its transfer encoding: chunked,
// it used to reach the JSON decoder and answer 400.
func TestOverLimitChunkedBodiesAnswer413(t *testing.T) {
	h := newHarness(t, testConfig(t))
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	w := h.createWebhook(admin, "https://hooks.example.com/x", "BOOKING_CREATED")
	for _, rt := range [][2]string{
		{http.MethodPost, "/api/v1/webhooks"},
		{http.MethodPatch, "/api/v1/webhooks/" + w.ID},
		{http.MethodPost, "/api/v1/webhooks/" + w.ID + "/test"},
		{http.MethodDelete, "/api/v1/webhooks/" + w.ID},
	} {
		if code, p := h.chunked(rt[0], rt[1], admin, 100<<10); code != http.StatusRequestEntityTooLarge || p.Status != http.StatusRequestEntityTooLarge {
			t.Errorf("%s %s with a chunked 100 KiB body: %d %+v, want 413 problem+json", rt[0], rt[1], code, p)
		}
	}
	if got := h.webhook(admin, w.ID); got.Description != "" {
		t.Fatalf("a refused update changed the webhook: %+v", got)
	}
	if code, p := h.chunked(http.MethodPatch, "/api/v1/webhooks/"+w.ID, admin, 100); code != http.StatusOK {
		t.Fatalf("a small chunked update: %d %+v", code, p)
	}
}
