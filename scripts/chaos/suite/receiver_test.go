package suite

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/webhook"
)

func post(t testing.TB, url, secret, body string, attempt int) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(body)))
	webhook.SetHeaders(req.Header, secret, webhook.Delivery{ID: "d1", Event: "BOOKING_CREATED", Timestamp: time.Now(), Attempt: attempt}, []byte(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestTheReceiverCountsSignedDeliveriesPerEventAndRefusesForgedOnes(t *testing.T) {
	secret := webhook.GenerateSecret()
	r, err := startReceiver(secret)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	body := `{"id":"ev-1","type":"BOOKING_CREATED"}`
	for attempt := 1; attempt <= 2; attempt++ {
		if code := post(t, r.URL(), secret, body, attempt); code != http.StatusOK {
			t.Fatalf("signed delivery answered %d", code)
		}
	}
	if code := post(t, r.URL(), webhook.GenerateSecret(), `{"id":"ev-2"}`, 1); code != http.StatusUnauthorized {
		t.Errorf("forged delivery answered %d, want 401", code)
	}
	got, bad := r.snapshot()
	if d := got["ev-1"]; d.ok != 2 || len(d.attempts) != 2 || d.attempts[1] != "2" {
		t.Errorf("ev-1: %+v, want two deliveries, attempts 1 and 2", d)
	}
	if _, ok := got["ev-2"]; ok || bad != 1 {
		t.Errorf("forged delivery counted (%v) or not refused (bad = %d)", ok, bad)
	}
}
