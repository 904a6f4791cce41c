package webhookdispatcher_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/testkit"
)

func TestOtherOrganizationsWebhooksAnswer404AndRolesAreEnforced(t *testing.T) {
	h := newHarness(t, testConfig(t))
	rcv := newReceiver(t)
	orgA, orgB := testkit.UniqueID("org-a"), testkit.UniqueID("org-b")
	adminA, adminB, viewerA := token(t, orgA, "ADMIN"), token(t, orgB, "ADMIN"), token(t, orgA, "VIEWER")
	w := h.createWebhook(adminA, rcv.srv.URL, "BOOKING_CREATED")
	h.publish(orgA, "BOOKING_CREATED", nil)
	testkit.Eventually(t, 5*time.Second, "a delivery in the log", func() bool { return len(h.deliveries(adminA, w.ID)) == 1 })
	d := h.deliveries(adminA, w.ID)[0]

	var listB pageOut[webhookOut]
	if code := h.call(http.MethodGet, "/api/v1/webhooks", adminB, nil, &listB); code != http.StatusOK || len(listB.Data) != 0 {
		t.Fatalf("org B lists %d webhooks (status %d), want none", len(listB.Data), code)
	}
	base := "/api/v1/webhooks/" + w.ID
	crossOrg := []struct{ method, path string }{
		{http.MethodGet, base},
		{http.MethodPatch, base},
		{http.MethodDelete, base},
		{http.MethodPost, base + "/test"},
		{http.MethodGet, base + "/deliveries"},
		{http.MethodPost, base + "/deliveries/" + d.ID + "/retry"},
	}
	for _, r := range crossOrg {
		var p problemOut
		var body any
		if r.method == http.MethodPatch {
			body = map[string]any{"description": "mine now"}
		}
		if code := h.call(r.method, r.path, adminB, body, &p); code != http.StatusNotFound || p.Status != http.StatusNotFound {
			t.Errorf("org B %s %s: status %d, want 404", r.method, r.path, code)
		}
	}
	// Its own organization reads it, without the secret.
	var own map[string]any
	if code := h.call(http.MethodGet, base, viewerA, nil, &own); code != http.StatusOK || own["id"] != w.ID || own["url"] != rcv.srv.URL {
		t.Fatalf("GET own webhook: status %d, %v", code, own)
	}
	if _, leaked := own["secret"]; leaked || own["secretHint"] == "" {
		t.Fatalf("GET own webhook shows secret %v, hint %v", own["secret"], own["secretHint"])
	}
	// A delivery id under another webhook of the same organization is not found either.
	other := h.createWebhook(adminA, rcv.srv.URL, "RATE_QUOTED")
	if code := h.call(http.MethodPost, "/api/v1/webhooks/"+other.ID+"/deliveries/"+d.ID+"/retry", adminA, nil, nil); code != http.StatusNotFound {
		t.Errorf("retry through another webhook: status %d, want 404", code)
	}

	// Roles: a VIEWER reads, but every write is 403.
	if code := h.call(http.MethodGet, "/api/v1/webhooks", viewerA, nil, nil); code != http.StatusOK {
		t.Errorf("viewer list: %d", code)
	}
	if code := h.call(http.MethodGet, base+"/deliveries", viewerA, nil, nil); code != http.StatusOK {
		t.Errorf("viewer deliveries: %d", code)
	}
	writes := []struct {
		method, path string
		body         any
	}{
		{http.MethodPost, "/api/v1/webhooks", map[string]any{"url": rcv.srv.URL, "events": []string{"BOOKING_CREATED"}}},
		{http.MethodPatch, base, map[string]any{"description": "x"}},
		{http.MethodDelete, base, nil},
		{http.MethodPost, base + "/test", nil},
		{http.MethodPost, base + "/deliveries/" + d.ID + "/retry", nil},
	}
	for _, r := range writes {
		var p problemOut
		if code := h.call(r.method, r.path, viewerA, r.body, &p); code != http.StatusForbidden || !strings.Contains(p.Detail, "VIEWER") {
			t.Errorf("viewer %s %s: status %d %q, want 403", r.method, r.path, code, p.Detail)
		}
	}
	if code := h.call(http.MethodGet, "/api/v1/webhooks", "", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
	if code := h.call(http.MethodGet, "/api/v1/webhooks", token(t, "", "ADMIN"), nil, nil); code != http.StatusForbidden {
		t.Errorf("token without organizationId: %d, want 403", code)
	}

	// The owner deletes; the id is then gone.
	if code := h.call(http.MethodDelete, base, adminA, nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if code := h.call(http.MethodDelete, base, adminA, nil, nil); code != http.StatusNotFound {
		t.Fatalf("delete again: %d, want 404", code)
	}
}

func TestWebhookValidationAndUpdates(t *testing.T) {
	h := newHarness(t, testConfig(t))
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	bad := []struct {
		name string
		body map[string]any
		want string
	}{
		{"ftp url", map[string]any{"url": "ftp://example.com/x", "events": []string{"BOOKING_CREATED"}}, "https://"},
		{"no url", map[string]any{"events": []string{"BOOKING_CREATED"}}, "url: required"},
		{"credentials", map[string]any{"url": "https://u:p@example.com/", "events": []string{"BOOKING_CREATED"}}, "credentials"},
		{"no events", map[string]any{"url": "https://example.com/", "events": []string{}}, "events"},
		{"in-app only type", map[string]any{"url": "https://example.com/", "events": []string{"DOCUMENT_UPLOADED"}}, "DOCUMENT_UPLOADED"},
		{"short secret", map[string]any{"url": "https://example.com/", "events": []string{"BOOKING_CREATED"}, "secret": "short"}, "secret"},
		{"bad whsec", map[string]any{"url": "https://example.com/", "events": []string{"BOOKING_CREATED"}, "secret": "whsec_not*base64*at*all"}, "base64"},
		{"unknown field", map[string]any{"url": "https://example.com/", "events": []string{"BOOKING_CREATED"}, "eventz": 1}, "unknown field"},
		{"long description", map[string]any{"url": "https://example.com/", "events": []string{"BOOKING_CREATED"}, "description": strings.Repeat("x", 501)}, "description"},
	}
	for _, b := range bad {
		var p problemOut
		if code := h.call(http.MethodPost, "/api/v1/webhooks", admin, b.body, &p); code != http.StatusBadRequest || !strings.Contains(p.Detail, b.want) {
			t.Errorf("%s: status %d detail %q, want 400 mentioning %q", b.name, code, p.Detail, b.want)
		}
	}

	var w webhookOut
	code := h.call(http.MethodPost, "/api/v1/webhooks", admin, map[string]any{
		"url": "https://erp.example.com/hooks", "events": []string{"PAYMENT_SUCCESS", "PAYMENT_SUCCESS"},
		"secret": "my-own-signing-secret-1234", "description": "ERP",
	}, &w)
	if code != http.StatusCreated || w.Secret != "my-own-signing-secret-1234" || w.SecretHint != "…1234" || len(w.Events) != 1 || w.Status != "ACTIVE" {
		t.Fatalf("create with own secret: %d %+v", code, w)
	}
	var up webhookOut
	code = h.call(http.MethodPatch, "/api/v1/webhooks/"+w.ID, admin, map[string]any{
		"url": "https://erp.example.com/v2", "events": []string{"RATE_QUOTED"}, "secret": "another-secret-value-9876", "status": "INACTIVE",
	}, &up)
	if code != http.StatusOK || up.URL != "https://erp.example.com/v2" || up.Events[0] != "RATE_QUOTED" || up.SecretHint != "…9876" || up.Status != "INACTIVE" || up.Secret != "" {
		t.Fatalf("update: %d %+v", code, up)
	}
	var p problemOut
	if code := h.call(http.MethodPatch, "/api/v1/webhooks/"+w.ID, admin, map[string]any{"status": "FAILED"}, &p); code != http.StatusBadRequest {
		t.Fatalf("PATCH status FAILED: %d, want 400", code)
	}
	if code := h.call(http.MethodPatch, "/api/v1/webhooks/not-a-uuid", admin, map[string]any{}, nil); code != http.StatusNotFound {
		t.Fatalf("PATCH malformed id: %d, want 404", code)
	}

	// Pagination.
	for range 3 {
		h.createWebhook(admin, "https://example.com/h", "BOOKING_CREATED")
	}
	var page1, page2 pageOut[webhookOut]
	h.call(http.MethodGet, "/api/v1/webhooks?limit=3", admin, nil, &page1)
	if len(page1.Data) != 3 || page1.NextCursor == nil {
		t.Fatalf("page 1: %d items, cursor %v", len(page1.Data), page1.NextCursor)
	}
	h.call(http.MethodGet, "/api/v1/webhooks?limit=3&cursor="+*page1.NextCursor, admin, nil, &page2)
	if len(page2.Data) != 1 || page2.NextCursor != nil || page2.Data[0].ID != w.ID {
		t.Fatalf("page 2: %+v", page2)
	}
	if code := h.call(http.MethodGet, "/api/v1/webhooks?limit=1000", admin, nil, nil); code != http.StatusBadRequest {
		t.Fatalf("limit 1000: %d", code)
	}
}

func TestTestEndpointReportsAndDoesNotCountFailures(t *testing.T) {
	h := newHarness(t, testConfig(t))
	rcv := newReceiver(t)
	rcv.setAnswer(func(n int) (int, string) {
		if n == 1 {
			return http.StatusServiceUnavailable, "down for maintenance" + strings.Repeat(".", 10_000)
		}
		return http.StatusOK, "pong"
	})
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	w := h.createWebhook(admin, rcv.srv.URL, "BOOKING_CREATED")

	type result struct {
		Success         bool    `json:"success"`
		StatusCode      *int    `json:"statusCode"`
		DurationMs      *int64  `json:"durationMs"`
		ResponseExcerpt string  `json:"responseExcerpt"`
		Error           *string `json:"error"`
	}
	var r1, r2 result
	if code := h.call(http.MethodPost, "/api/v1/webhooks/"+w.ID+"/test", admin, nil, &r1); code != http.StatusOK {
		t.Fatalf("test: %d", code)
	}
	if r1.Success || r1.StatusCode == nil || *r1.StatusCode != 503 || r1.DurationMs == nil || r1.Error == nil ||
		!strings.HasPrefix(r1.ResponseExcerpt, "down for maintenance") || len(r1.ResponseExcerpt) != 4096 {
		t.Fatalf("failing test = %+v (excerpt %d bytes)", r1, len(r1.ResponseExcerpt))
	}
	if got := h.webhook(admin, w.ID); got.FailureCount != 0 || got.Status != "ACTIVE" {
		t.Fatalf("after a failed test: failureCount %d status %s", got.FailureCount, got.Status)
	}
	h.call(http.MethodPost, "/api/v1/webhooks/"+w.ID+"/test", admin, nil, &r2)
	if !r2.Success || *r2.StatusCode != 200 || r2.ResponseExcerpt != "pong" || r2.Error != nil {
		t.Fatalf("passing test = %+v", r2)
	}
	req := rcv.requests()[1]
	if !jsSnippetValid(w.Secret, req.Body, req.Header) || req.Header.Get("X-Webhook-Event") != "WEBHOOK_TEST" {
		t.Fatalf("test delivery headers %v", req.Header)
	}
	if len(h.deliveries(admin, w.ID)) != 0 {
		t.Fatal("test deliveries are in the delivery log")
	}
}

// The timestamps of a create or update answer are exactly those a later
// read shows: PostgreSQL keeps microseconds, so an answer built from Go's
// nanosecond clock would differ from every later GET.
func TestCreateAndUpdateAnswerTheTimestampsAReadShows(t *testing.T) {
	h := newHarness(t, testConfig(t))
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	type stamps struct {
		ID        string `json:"id"`
		CreatedAt string `json:"createdAt"`
		UpdatedAt string `json:"updatedAt"`
	}
	listed := func(id string) stamps {
		t.Helper()
		var p pageOut[stamps]
		if code := h.call(http.MethodGet, "/api/v1/webhooks?limit=100", admin, nil, &p); code != http.StatusOK {
			t.Fatalf("list: %d", code)
		}
		for _, w := range p.Data {
			if w.ID == id {
				return w
			}
		}
		t.Fatalf("webhook %s not listed", id)
		return stamps{}
	}
	// Several tries: a clock reading that happens to fall on a whole
	// microsecond would hide the difference.
	for range 5 {
		var created stamps
		if code := h.call(http.MethodPost, "/api/v1/webhooks", admin, map[string]any{"url": "https://example.com/h", "events": []string{"BOOKING_CREATED"}}, &created); code != http.StatusCreated {
			t.Fatalf("create: %d", code)
		}
		if got := listed(created.ID); got != created {
			t.Fatalf("create answered %+v, a read shows %+v", created, got)
		}
		var updated stamps
		if code := h.call(http.MethodPatch, "/api/v1/webhooks/"+created.ID, admin, map[string]any{"description": "changed"}, &updated); code != http.StatusOK {
			t.Fatalf("update: %d", code)
		}
		if got := listed(created.ID); got != updated {
			t.Fatalf("update answered %+v, a read shows %+v", updated, got)
		}
	}
}
