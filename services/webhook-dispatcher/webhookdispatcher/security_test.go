package webhookdispatcher_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xpeditis/notify/pkg/ratelimit"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/secrets"
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

// An organization has at most WEBHOOK_MAX_PER_ORGANIZATION webhooks: one
// more answers 409 saying why (one event used to make as many deliveries as
// an ADMIN cared to create webhooks).
func TestWebhooksPerOrganizationAreCapped(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxPerOrganization = 3
	h := newHarness(t, cfg)
	admin := token(t, testkit.UniqueID("org"), "ADMIN")
	var ids []string
	for range 3 {
		ids = append(ids, h.createWebhook(admin, "https://hooks.example.com/x", "BOOKING_CREATED").ID)
	}
	var p problemOut
	code := h.call(http.MethodPost, "/api/v1/webhooks", admin, map[string]any{"url": "https://hooks.example.com/y", "events": []string{"BOOKING_CREATED"}}, &p)
	if code != http.StatusConflict || !strings.Contains(p.Detail, "has 3 webhooks, the most allowed") || !strings.Contains(p.Detail, "WEBHOOK_MAX_PER_ORGANIZATION") {
		t.Fatalf("fourth webhook: %d %q, want 409 with the reason", code, p.Detail)
	}
	h.createWebhook(token(t, testkit.UniqueID("org"), "ADMIN"), "https://hooks.example.com/x", "BOOKING_CREATED")
	if code := h.call(http.MethodDelete, "/api/v1/webhooks/"+ids[0], admin, nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	h.createWebhook(admin, "https://hooks.example.com/z", "BOOKING_CREATED")
}

// A key id in use whose key is not the one that sealed its secrets (a typo,
// or a key replaced under the same id) is found at start: /readyz answers
// 503 naming the id, instead of every signing failing later. A key id
// missing altogether is not: the API must stay up to replace its secrets.
func TestAWrongKeyUnderAKnownIDMakesTheServiceNotReady(t *testing.T) {
	cfg := testConfig(t)
	h := newHarness(t, cfg)
	admin := token(t, testkit.UniqueID("org"), "ADMIN")
	h.createWebhook(admin, "https://hooks.example.com/x", "BOOKING_CREATED")
	if code, body := h.readyzUntil(func(code int, _ map[string]string) bool { return code == http.StatusOK }); code != http.StatusOK {
		t.Fatalf("readyz with the right key: %d %v", code, body)
	}

	h.stop()
	h.cfg.SecretKeys = secrets.NewKeySpec("test1") // same id, another key
	h.start()
	code, body := h.readyzUntil(func(_ int, body map[string]string) bool {
		return body["webhook_secrets_keys"] != "" && body["webhook_secrets_keys"] != "starting"
	})
	if code != http.StatusServiceUnavailable || !strings.Contains(body["webhook_secrets_keys"], `id "test1" does not open`) {
		t.Fatalf("readyz with a wrong key under the id in use: %d %v, want 503 naming the key id", code, body)
	}

	h.stop()
	h.cfg.SecretKeys = secrets.NewKeySpec("test2") // test1 missing altogether
	h.start()
	if code, body := h.readyzUntil(func(code int, _ map[string]string) bool { return code == http.StatusOK }); code != http.StatusOK {
		t.Fatalf("readyz with the key id missing: %d %v, want ready", code, body)
	}
}

// readyzUntil polls /readyz until done accepts its answer, for at most 10 s
// (the consumer starts after the routes serve), and returns the last answer.
func (h *harness) readyzUntil(done func(int, map[string]string) bool) (int, map[string]string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := h.readyz()
		if done(code, body) || time.Now().After(deadline) {
			return code, body
		}
		time.Sleep(20 * time.Millisecond) // polling a service's endpoint: nothing to wait on
	}
}

func (h *harness) readyz() (int, map[string]string) {
	h.t.Helper()
	var body map[string]string
	code := h.call(http.MethodGet, "/readyz", "", nil, &body)
	return code, body
}

// Writes are limited per user, tests and retries (each sends a request at
// once) per organization: past the burst, 429 with Retry-After.
func TestWebhookWritesAndSendsAreRateLimited(t *testing.T) {
	cfg := testConfig(t)
	cfg.Writes = ratelimit.Limit{PerMinute: 1, Burst: 2}
	cfg.Sends = ratelimit.Limit{PerMinute: 1, Burst: 2}
	h := newHarness(t, cfg)
	rcv := newReceiver(t)
	org := testkit.UniqueID("org")
	admin, manager := token(t, org, "ADMIN"), token(t, org, "MANAGER")
	w := h.createWebhook(admin, rcv.srv.URL, "BOOKING_CREATED")
	if code := h.call(http.MethodPatch, "/api/v1/webhooks/"+w.ID, admin, map[string]any{"description": "a"}, nil); code != http.StatusOK {
		t.Fatalf("second write: %d", code)
	}
	h.expect429(http.MethodPatch, "/api/v1/webhooks/"+w.ID, admin, map[string]any{"description": "b"})
	h.expect429(http.MethodDelete, "/api/v1/webhooks/"+w.ID, admin, nil)
	if code := h.call(http.MethodPatch, "/api/v1/webhooks/"+w.ID, manager, map[string]any{"description": "c"}, nil); code != http.StatusOK {
		t.Fatalf("another user's write: %d, want it not limited by the first user's", code)
	}

	for range 2 {
		if code := h.call(http.MethodPost, "/api/v1/webhooks/"+w.ID+"/test", admin, nil, nil); code != http.StatusOK {
			t.Fatalf("test within the burst: %d", code)
		}
	}
	h.expect429(http.MethodPost, "/api/v1/webhooks/"+w.ID+"/test", manager, nil) // same organization
	h.expect429(http.MethodPost, "/api/v1/webhooks/"+w.ID+"/deliveries/"+uuid.NewString()+"/retry", admin, nil)
	if rcv.count() != 2 {
		t.Fatalf("the receiver got %d requests, want the 2 allowed tests", rcv.count())
	}
	other := token(t, testkit.UniqueID("org"), "ADMIN")
	ow := h.createWebhook(other, rcv.srv.URL, "BOOKING_CREATED")
	if code := h.call(http.MethodPost, "/api/v1/webhooks/"+ow.ID+"/test", other, nil, nil); code != http.StatusOK {
		t.Fatalf("another organization's test: %d", code)
	}
}

func (h *harness) expect429(method, path, tok string, body any) {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.base+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var p problemOut
	_ = json.NewDecoder(resp.Body).Decode(&p)
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusTooManyRequests || p.Status != http.StatusTooManyRequests || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") || err != nil || secs < 1 {
		h.t.Errorf("%s %s: %d %+v Retry-After %q, want 429 problem+json with Retry-After", method, path, resp.StatusCode, p, resp.Header.Get("Retry-After"))
	}
}
