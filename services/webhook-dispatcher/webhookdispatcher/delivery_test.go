package webhookdispatcher_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/pkg/webhook"
)

// jsSnippetValid is the integrators' receiver code, ported line for line:
//
//	const signature = crypto.createHmac('sha256', secret).update(rawBody).digest('hex');
//	const isValid = `sha256=${signature}` === headers['x-webhook-signature'];
func jsSnippetValid(secret string, rawBody []byte, headers http.Header) bool {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(rawBody)
	signature := hex.EncodeToString(mac.Sum(nil))
	return "sha256="+signature == headers.Get("x-webhook-signature")
}

func TestDeliveryIsSignedAndVerifiesLikeTheIntegratorsCode(t *testing.T) {
	h := newHarness(t, testConfig(t))
	rcv := newReceiver(t)
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	w := h.createWebhook(admin, rcv.srv.URL+"/hooks?tenant=a", "BOOKING_CREATED", "PAYMENT_FAILED")
	if !strings.HasPrefix(w.Secret, webhook.SecretPrefix) || w.SecretHint != "…"+w.Secret[len(w.Secret)-4:] {
		t.Fatalf("generated secret %q / hint %q", w.Secret, w.SecretHint)
	}

	published := time.Now()
	eventID := h.publish(org, "BOOKING_CREATED", map[string]any{"bookingId": "BK-1", "amount": 12.5})
	testkit.Eventually(t, time.Second, "the delivery to arrive within a second of the event", func() bool { return rcv.count() == 1 })
	t.Logf("event to delivery: %s", rcv.requests()[0].At.Sub(published))

	got := rcv.requests()[0]
	if !jsSnippetValid(w.Secret, got.Body, got.Header) {
		t.Fatalf("the integrators' snippet rejects the delivery: header %q", got.Header.Get("X-Webhook-Signature"))
	}
	if err := webhook.VerifyStandard(w.Secret, got.Body, got.Header.Get("webhook-id"), got.Header.Get("webhook-timestamp"),
		got.Header.Get("webhook-signature"), time.Now(), 5*time.Minute); err != nil {
		t.Fatalf("Standard Webhooks signature: %v", err)
	}
	var body map[string]any
	if err := json.Unmarshal(got.Body, &body); err != nil {
		t.Fatalf("body: %v", err)
	}
	if body["id"] != eventID || body["type"] != "BOOKING_CREATED" || body["organizationId"] != org {
		t.Fatalf("body = %s", got.Body)
	}
	if data, _ := body["data"].(map[string]any); data["bookingId"] != "BK-1" || data["amount"] != 12.5 {
		t.Fatalf("data = %v", body["data"])
	}
	if _, err := time.Parse(time.RFC3339Nano, body["createdAt"].(string)); err != nil {
		t.Fatalf("createdAt: %v", err)
	}
	if len(body) != 5 {
		t.Fatalf("body has fields beyond id, type, createdAt, organizationId, data: %s", got.Body)
	}
	if got.Header.Get("X-Webhook-Event") != "BOOKING_CREATED" || got.Header.Get("X-Webhook-Attempt") != "1" ||
		got.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("headers = %v", got.Header)
	}
	ts, err := strconv.ParseInt(got.Header.Get("X-Webhook-Timestamp"), 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)) > time.Minute {
		t.Fatalf("X-Webhook-Timestamp = %q", got.Header.Get("X-Webhook-Timestamp"))
	}

	var ds []deliveryOut
	testkit.Eventually(t, 5*time.Second, "the delivery to be recorded as SUCCEEDED", func() bool {
		ds = h.deliveries(admin, w.ID)
		return len(ds) == 1 && ds[0].Status == "SUCCEEDED"
	})
	if ds[0].ID != got.Header.Get("X-Webhook-Id") || ds[0].ID != got.Header.Get("webhook-id") || ds[0].EventID != eventID {
		t.Fatalf("delivery %+v does not match headers %v", ds[0], got.Header)
	}
	if a := ds[0].Attempts; len(a) != 1 || a[0].StatusCode != 200 || a[0].ResponseExcerpt != "ok" || a[0].Number != 1 || a[0].Outcome != "success" {
		t.Fatalf("attempts = %+v", a)
	}

	// The secret is never shown again.
	listed := h.webhook(admin, w.ID)
	if listed.Secret != "" || listed.SecretHint != w.SecretHint {
		t.Fatalf("listed webhook shows secret %q, hint %q", listed.Secret, listed.SecretHint)
	}
	var secretAtRest int
	if err := h.db.Get(&secretAtRest, `SELECT count(*) FROM webhooks WHERE position($1::bytea in secret_ciphertext) > 0`, []byte(w.Secret)); err != nil || secretAtRest != 0 {
		t.Fatalf("secret stored in clear (%d rows, %v)", secretAtRest, err)
	}

	// Not subscribed, another organization, a type without webhook, and a
	// duplicate of the same event: nothing more. A last subscribed event
	// marks when the consumer has passed them all.
	h.publish(org, "RATE_QUOTED", nil)
	h.publish(testkit.UniqueID("other-org"), "BOOKING_CREATED", nil)
	h.publish(org, "DOCUMENT_UPLOADED", nil)
	republishSameEvent(t, h, org, eventID)
	marker := h.publish(org, "PAYMENT_FAILED", nil)
	testkit.Eventually(t, 5*time.Second, "the marker delivery", func() bool { return rcv.count() >= 2 })
	var last map[string]any
	_ = json.Unmarshal(rcv.requests()[rcv.count()-1].Body, &last)
	if rcv.count() != 2 || last["id"] != marker {
		t.Fatalf("receiver got %d requests, last %v; want exactly the marker after the first", rcv.count(), last["id"])
	}
	var rows int
	if err := h.db.Get(&rows, `SELECT count(*) FROM webhook_deliveries WHERE event_id = $1`, eventID); err != nil || rows != 1 {
		t.Fatalf("%d delivery rows for the duplicated event (%v), want 1", rows, err)
	}
}

// republishSameEvent publishes an event again under a new Nats-Msg-Id, so
// that JetStream's de-duplication does not hide it and the dispatcher's own
// idempotency is what is tested.
func republishSameEvent(t *testing.T, h *harness, org, eventID string) {
	t.Helper()
	data := []byte(`{"id":"` + eventID + `","type":"BOOKING_CREATED","organizationId":"` + org + `"}`)
	if _, err := h.nats.JS.Publish(t.Context(), "events.BOOKING_CREATED", data); err != nil {
		t.Fatalf("republish: %v", err)
	}
}

func TestFailingEndpointGetsThreeAttemptsThenIsDisabled(t *testing.T) {
	h := newHarness(t, testConfig(t))
	failing, healthy := newReceiver(t), newReceiver(t)
	failing.setAnswer(func(int) (int, string) { return http.StatusInternalServerError, "boom" })
	org := testkit.UniqueID("org")
	admin := token(t, org, "MANAGER")
	w := h.createWebhook(admin, failing.srv.URL, "BOOKING_CREATED")
	marker := h.createWebhook(admin, healthy.srv.URL, "PAYMENT_SUCCESS")

	first := h.publish(org, "BOOKING_CREATED", nil)
	for n := 1; n <= 3; n++ {
		testkit.Eventually(t, 5*time.Second, "attempt "+strconv.Itoa(n), func() bool { return failing.count() >= n })
		testkit.Eventually(t, 5*time.Second, "failureCount "+strconv.Itoa(n), func() bool { return h.webhook(admin, w.ID).FailureCount == n })
	}
	final := h.webhook(admin, w.ID)
	if final.Status != "FAILED" || final.FailureCount != 3 {
		t.Fatalf("after 3 failed attempts: status %s, failureCount %d", final.Status, final.FailureCount)
	}
	reqs := failing.requests()
	gap1, gap2 := reqs[1].At.Sub(reqs[0].At), reqs[2].At.Sub(reqs[1].At)
	if gap1 < 150*time.Millisecond || gap2 <= gap1 {
		t.Fatalf("gaps between attempts %s then %s: want exponential backoff (base 200ms)", gap1, gap2)
	}
	for i, r := range reqs {
		if r.Header.Get("X-Webhook-Id") != reqs[0].Header.Get("X-Webhook-Id") || r.Header.Get("X-Webhook-Attempt") != strconv.Itoa(i+1) {
			t.Fatalf("attempt %d headers: id %s attempt %s", i+1, r.Header.Get("X-Webhook-Id"), r.Header.Get("X-Webhook-Attempt"))
		}
	}
	ds := h.deliveries(admin, w.ID)
	if len(ds) != 1 || ds[0].EventID != first || ds[0].Status != "FAILED" || len(ds[0].Attempts) != 3 {
		t.Fatalf("delivery log = %+v", ds)
	}
	for _, a := range ds[0].Attempts {
		if a.StatusCode != 500 || a.ResponseExcerpt != "boom" || a.At.IsZero() {
			t.Fatalf("attempt = %+v", a)
		}
	}

	// Disabled: the next event is not delivered. The marker event to the
	// healthy webhook shows the consumer went past it.
	next := h.publish(org, "BOOKING_CREATED", nil)
	h.publish(org, "PAYMENT_SUCCESS", nil)
	testkit.Eventually(t, 5*time.Second, "the marker delivery", func() bool { return healthy.count() == 1 })
	if failing.count() != 3 {
		t.Fatalf("a FAILED webhook got %d requests, want 3", failing.count())
	}
	var rows int
	if err := h.db.Get(&rows, `SELECT count(*) FROM webhook_deliveries WHERE event_id = $1`, next); err != nil || rows != 0 {
		t.Fatalf("%d deliveries for an event after the webhook failed (%v)", rows, err)
	}
	_ = marker

	// Re-activation resets the count and resumes delivery; a failure then a
	// success leaves the count at 0.
	failing.setAnswer(func(n int) (int, string) {
		if n == 4 {
			return http.StatusServiceUnavailable, "not yet"
		}
		return http.StatusOK, "ok"
	})
	var re webhookOut
	if code := h.call(http.MethodPatch, "/api/v1/webhooks/"+w.ID, admin, map[string]any{"status": "ACTIVE"}, &re); code != http.StatusOK || re.Status != "ACTIVE" || re.FailureCount != 0 {
		t.Fatalf("re-activate: %d %+v", code, re)
	}
	third := h.publish(org, "BOOKING_CREATED", nil)
	testkit.Eventually(t, 5*time.Second, "the failed first attempt after re-activation", func() bool { return failing.count() == 4 })
	testkit.Eventually(t, 5*time.Second, "failureCount 1", func() bool { return h.webhook(admin, w.ID).FailureCount == 1 })
	testkit.Eventually(t, 5*time.Second, "the retry to succeed", func() bool { return failing.count() == 5 })
	testkit.Eventually(t, 5*time.Second, "failureCount reset by the success", func() bool {
		got := h.webhook(admin, w.ID)
		return got.FailureCount == 0 && got.Status == "ACTIVE"
	})
	ds = h.deliveries(admin, w.ID)
	if len(ds) != 2 || ds[0].EventID != third || ds[0].Status != "SUCCEEDED" || len(ds[0].Attempts) != 2 {
		t.Fatalf("delivery log after re-activation = %+v", ds)
	}

	// The FAILED delivery can be retried by hand; that does not touch
	// failureCount.
	var retried deliveryOut
	if code := h.call(http.MethodPost, "/api/v1/webhooks/"+w.ID+"/deliveries/"+ds[1].ID+"/retry", admin, nil, &retried); code != http.StatusOK {
		t.Fatalf("manual retry: status %d", code)
	}
	if retried.Status != "SUCCEEDED" || len(retried.Attempts) != 4 || !retried.Attempts[3].Manual {
		t.Fatalf("manual retry = %+v", retried)
	}
	if got := failing.requests()[5]; got.Header.Get("X-Webhook-Id") != ds[1].ID || got.Header.Get("X-Webhook-Attempt") != "4" {
		t.Fatalf("manual retry headers: %v", got.Header)
	}
	if code := h.call(http.MethodPost, "/api/v1/webhooks/"+w.ID+"/deliveries/"+ds[1].ID+"/retry", admin, nil, nil); code != http.StatusOK {
		t.Fatalf("second manual retry: status %d", code)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	h := newHarness(t, testConfig(t))
	rcv := newReceiver(t)
	rcv.srv.Config.Handler = retryAfterHandler(rcv)
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	h.createWebhook(admin, rcv.srv.URL, "RATE_QUOTED")
	h.publish(org, "RATE_QUOTED", nil)
	testkit.Eventually(t, 10*time.Second, "the retry", func() bool { return rcv.count() == 2 })
	reqs := rcv.requests()
	if gap := reqs[1].At.Sub(reqs[0].At); gap < 900*time.Millisecond {
		t.Fatalf("retried after %s, want at least the 1s of Retry-After (backoff alone is 200ms)", gap)
	}
}

// retryAfterHandler answers 429 with Retry-After: 1 once, then 200.
func retryAfterHandler(r *receiver) http.Handler {
	inner := r.srv.Config.Handler
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.count() == 0 {
			w.Header().Set("Retry-After", "1")
			r.setAnswer(func(n int) (int, string) {
				if n == 1 {
					return http.StatusTooManyRequests, "slow down"
				}
				return http.StatusOK, "ok"
			})
		}
		inner.ServeHTTP(w, req)
	})
}

func TestPendingRetrySurvivesARestart(t *testing.T) {
	cfg := testConfig(t)
	cfg.RetryBase = 2 * time.Second
	h := newHarness(t, cfg)
	rcv := newReceiver(t)
	rcv.setAnswer(func(n int) (int, string) {
		if n == 1 {
			return http.StatusBadGateway, "down"
		}
		return http.StatusOK, "ok"
	})
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	w := h.createWebhook(admin, rcv.srv.URL, "CARRIER_ACCEPTED", "CARRIER_REJECTED")
	first := h.publish(org, "CARRIER_ACCEPTED", nil)
	testkit.Eventually(t, 5*time.Second, "the first attempt to be recorded with a retry scheduled", func() bool {
		ds := h.deliveries(admin, w.ID)
		return len(ds) == 1 && len(ds[0].Attempts) == 1 && ds[0].Attempts[0].Outcome == "http_error" && ds[0].Status == "PENDING"
	})

	h.stop()
	// While the dispatcher is down, another event arrives.
	second := h.publish(org, "CARRIER_REJECTED", nil)
	var pending int
	if err := h.db.Get(&pending, `SELECT count(*) FROM webhook_deliveries WHERE status = 'PENDING' AND next_attempt_at > now()`); err != nil || pending != 1 {
		t.Fatalf("before restart: %d deliveries pending a future retry (%v), want 1", pending, err)
	}
	h.start()

	testkit.Eventually(t, 10*time.Second, "the scheduled retry and the new event after the restart", func() bool { return rcv.count() == 3 })
	byID := map[string][]received{}
	for _, r := range rcv.requests() {
		var b map[string]any
		_ = json.Unmarshal(r.Body, &b)
		byID[b["id"].(string)] = append(byID[b["id"].(string)], r)
	}
	if len(byID[first]) != 2 || len(byID[second]) != 1 {
		t.Fatalf("requests per event: first %d, second %d; want 2 and 1", len(byID[first]), len(byID[second]))
	}
	if a, b := byID[first][0].Header.Get("X-Webhook-Id"), byID[first][1].Header.Get("X-Webhook-Id"); a != b {
		t.Fatalf("X-Webhook-Id changed across the restart: %s then %s", a, b)
	}
	testkit.Eventually(t, 5*time.Second, "both deliveries SUCCEEDED", func() bool {
		ds := h.deliveries(admin, w.ID)
		return len(ds) == 2 && ds[0].Status == "SUCCEEDED" && ds[1].Status == "SUCCEEDED"
	})
}

// A burst of events to a dead endpoint: the webhook is tried one request at
// a time until it answers (slow start), so it is disabled after exactly 3
// failed requests instead of receiving a request per event, and
// failureCount stops at 3.
func TestADeadEndpointGetsExactlyThreeRequestsFromABurst(t *testing.T) {
	h := newHarness(t, testConfig(t))
	dead := newReceiver(t)
	dead.setAnswer(func(int) (int, string) { return http.StatusServiceUnavailable, "down" })
	healthy := newReceiver(t)
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	w := h.createWebhook(admin, dead.srv.URL, "BOOKING_CREATED")
	h.createWebhook(admin, healthy.srv.URL, "PAYMENT_SUCCESS")
	for range 30 {
		h.publish(org, "BOOKING_CREATED", nil)
	}
	// Events published after the webhook turned FAILED get no delivery; a
	// last event to another webhook shows when the consumer has passed
	// them all.
	h.publish(org, "PAYMENT_SUCCESS", nil)
	testkit.Eventually(t, 15*time.Second, "the marker delivery", func() bool { return healthy.count() == 1 })
	var state string
	defer func() {
		if t.Failed() {
			t.Logf("last state: %s", state)
		}
	}()
	testkit.Eventually(t, 15*time.Second, "the webhook and all its deliveries FAILED", func() bool {
		if h.webhook(admin, w.ID).Status != "FAILED" {
			state = "webhook not FAILED"
			return false
		}
		statuses := map[string]int{}
		ds := h.deliveries(admin, w.ID)
		for _, d := range ds {
			statuses[d.Status]++
		}
		state = fmt.Sprintf("deliveries by status %v, %d requests received", statuses, dead.count())
		return statuses["FAILED"] == len(ds)
	})
	if got := h.webhook(admin, w.ID); got.FailureCount != 3 || dead.count() != 3 {
		t.Fatalf("%d requests reached the dead endpoint, failureCount %d; want 3 and 3", dead.count(), got.FailureCount)
	}
}

// An answer with NUL bytes (which PostgreSQL's jsonb cannot store) is
// recorded with them replaced, instead of failing its batch of results and
// leaving the deliveries in it unrecorded.
func TestAnAnswerWithNULBytesIsRecorded(t *testing.T) {
	h := newHarness(t, testConfig(t))
	rcv := newReceiver(t)
	rcv.setAnswer(func(int) (int, string) { return http.StatusOK, "ok\x00done" })
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	w := h.createWebhook(admin, rcv.srv.URL, "BOOKING_CREATED")
	h.publish(org, "BOOKING_CREATED", nil)
	var ds []deliveryOut
	testkit.Eventually(t, 5*time.Second, "the delivery to be recorded as SUCCEEDED", func() bool {
		ds = h.deliveries(admin, w.ID)
		return len(ds) == 1 && ds[0].Status == "SUCCEEDED"
	})
	if got := ds[0].Attempts[0].ResponseExcerpt; got != "ok\uFFFDdone" {
		t.Fatalf("excerpt %q", got)
	}
}
