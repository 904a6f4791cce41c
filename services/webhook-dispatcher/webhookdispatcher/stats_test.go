package webhookdispatcher_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/testkit"
)

type statsOut struct {
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	Deliveries struct {
		Total, Pending, Succeeded, Failed int
	} `json:"deliveries"`
	Attempts       int      `json:"attempts"`
	SuccessRate    *float64 `json:"successRate"`
	ResponseTimeMs *struct {
		P50 float64 `json:"p50"`
		P95 float64 `json:"p95"`
	} `json:"responseTimeMs"`
	LastError *attemptOut `json:"lastError"`
	Sampled   bool        `json:"sampled"`
}

// The stats of a webhook count its deliveries' attempts of the last 24 h:
// two answered 200 and one 503 give a success rate of 2/3 and name the 503
// as the last error; another organization gets 404.
func TestWebhookStatsSummarizeTheLastDay(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxAttempts = 1
	h := newHarness(t, cfg)
	rcv := newReceiver(t)
	rcv.setAnswer(func(n int) (int, string) {
		if n == 3 {
			return http.StatusServiceUnavailable, "down for a moment"
		}
		return http.StatusOK, "ok"
	})
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	w := h.createWebhook(admin, rcv.srv.URL, "BOOKING_CREATED")
	path := "/api/v1/webhooks/" + w.ID + "/stats"

	var empty statsOut
	if code := h.call(http.MethodGet, path, token(t, org, "VIEWER"), nil, &empty); code != http.StatusOK {
		t.Fatalf("stats: %d", code)
	}
	if empty.Attempts != 0 || empty.SuccessRate != nil || empty.ResponseTimeMs != nil || empty.LastError != nil || empty.To.Sub(empty.From) != 24*time.Hour {
		t.Fatalf("stats of a new webhook: %+v", empty)
	}
	for i := range 3 {
		h.publish(org, "BOOKING_CREATED", nil)
		testkit.Eventually(t, 10*time.Second, "the delivery to finish", func() bool {
			ds := h.deliveries(admin, w.ID)
			return len(ds) == i+1 && ds[0].Status != "PENDING"
		})
	}
	var s statsOut
	if code := h.call(http.MethodGet, path, admin, nil, &s); code != http.StatusOK {
		t.Fatalf("stats: %d", code)
	}
	if s.Attempts != 3 || s.SuccessRate == nil || *s.SuccessRate < 0.66 || *s.SuccessRate > 0.67 ||
		s.Deliveries.Total != 3 || s.Deliveries.Succeeded != 2 || s.Deliveries.Failed != 1 || s.Sampled {
		t.Fatalf("stats = %+v", s)
	}
	if s.ResponseTimeMs == nil || s.ResponseTimeMs.P95 < s.ResponseTimeMs.P50 {
		t.Fatalf("response times = %+v", s.ResponseTimeMs)
	}
	if s.LastError == nil || s.LastError.StatusCode != http.StatusServiceUnavailable || s.LastError.Error != "HTTP 503" || s.LastError.ResponseExcerpt != "down for a moment" {
		t.Fatalf("last error = %+v", s.LastError)
	}
	if code := h.call(http.MethodGet, path, token(t, testkit.UniqueID("other"), "ADMIN"), nil, nil); code != http.StatusNotFound {
		t.Fatalf("other organization: %d, want 404", code)
	}
}
