package webhookdispatcher_test

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/secrets"
	"github.com/xpeditis/notify/services/webhook-dispatcher/webhookdispatcher"
)

// A webhook whose secret cannot be decrypted (its key was dropped from
// WEBHOOK_SECRETS_KEYS) does not hold up the other webhooks of its
// organization: they are delivered at once, while it gets a FAILED delivery
// saying why, without counting against its endpoint. Once the key is back,
// the delivery can be retried by hand.
func TestUndecryptableSecretFailsItsDeliveriesWithoutStallingTheOrganization(t *testing.T) {
	cfg := testConfig(t)
	h := newHarness(t, cfg)
	healthy, broken := newReceiver(t), newReceiver(t)
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	good := h.createWebhook(admin, healthy.srv.URL, "BOOKING_CREATED")
	bad := h.createWebhook(admin, broken.srv.URL, "BOOKING_CREATED")

	// Seal the second secret under a key the dispatcher does not hold, as
	// if that key had been removed from its configuration.
	goneKey := secrets.NewKeySpec("gone")
	sealUnder(t, h, bad, goneKey)
	if err := h.nats.Conn.Publish(webhookdispatcher.InvalidationSubject, []byte(org)); err != nil {
		t.Fatal(err)
	}
	if err := h.nats.Conn.Flush(); err != nil {
		t.Fatal(err)
	}

	eventID := h.publish(org, "BOOKING_CREATED", map[string]any{"bookingId": "BK-9"})
	testkit.Eventually(t, 2*time.Second, "the healthy webhook's delivery", func() bool { return healthy.count() == 1 })
	if got := healthy.requests()[0]; !jsSnippetValid(good.Secret, got.Body, got.Header) {
		t.Fatalf("the healthy delivery's signature does not verify: %q", got.Header.Get("X-Webhook-Signature"))
	}

	var ds []deliveryOut
	testkit.Eventually(t, 5*time.Second, "a FAILED delivery for the webhook with the unreadable secret", func() bool {
		ds = h.deliveries(admin, bad.ID)
		return len(ds) == 1 && ds[0].Status == "FAILED"
	})
	if ds[0].EventID != eventID || len(ds[0].Attempts) != 1 {
		t.Fatalf("delivery = %+v", ds[0])
	}
	if a := ds[0].Attempts[0]; a.StatusCode != 0 || a.Error != `secret cannot be decrypted: key "gone" unknown` {
		t.Fatalf("attempt = %+v, want the reason", a)
	}
	if broken.count() != 0 {
		t.Fatalf("the webhook with the unreadable secret got %d requests", broken.count())
	}
	// Our fault, not the endpoint's: the webhook stays ACTIVE at 0.
	if got := h.webhook(admin, bad.ID); got.Status != "ACTIVE" || got.FailureCount != 0 {
		t.Fatalf("webhook with the unreadable secret: status %s failureCount %d, want ACTIVE 0", got.Status, got.FailureCount)
	}
	if n := metric(t, h, "webhook_secret_errors_total"); n < 1 {
		t.Fatalf("webhook_secret_errors_total = %v, want at least 1", n)
	}

	// While the key is missing, a manual retry or a test cannot sign: the
	// answer says why instead of a bare 500.
	retryPath := "/api/v1/webhooks/" + bad.ID + "/deliveries/" + ds[0].ID + "/retry"
	for _, path := range []string{retryPath, "/api/v1/webhooks/" + bad.ID + "/test"} {
		var p problemOut
		if code := h.call(http.MethodPost, path, admin, nil, &p); code != http.StatusConflict || !strings.Contains(p.Detail, `secret cannot be decrypted: key "gone" unknown`) {
			t.Fatalf("POST %s with the key missing: %d %q", path, code, p.Detail)
		}
	}

	// The operator puts the key back: the retry signs with the webhook's
	// secret.
	h.stop()
	h.cfg.SecretKeys = cfg.SecretKeys + "," + goneKey
	h.start()
	var retried deliveryOut
	if code := h.call(http.MethodPost, retryPath, admin, nil, &retried); code != http.StatusOK {
		t.Fatalf("retry with the key back: status %d", code)
	}
	if retried.Status != "SUCCEEDED" || len(retried.Attempts) != 2 || !retried.Attempts[1].Manual {
		t.Fatalf("retried delivery = %+v", retried)
	}
	got := broken.requests()
	if len(got) != 1 || !jsSnippetValid(bad.Secret, got[0].Body, got[0].Header) || got[0].Header.Get("X-Webhook-Id") != ds[0].ID {
		t.Fatalf("retried request: %d requests, headers %v", len(got), got[0].Header)
	}
}

// metric reads one unlabelled series from the service's /metrics.
func metric(t *testing.T, h *harness, name string) float64 {
	t.Helper()
	resp, err := http.Get(h.base + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %q", name, v)
			}
			return n
		}
	}
	t.Fatalf("metric %s not exposed", name)
	return 0
}

// Rotation: on start, secrets sealed with an older key move to the current
// one. A secret whose key is gone is passed over; it does not keep the
// secrets after it on their old key.
func TestKeyRotationPassesOverASecretWhoseKeyIsGone(t *testing.T) {
	cfg := testConfig(t)
	oldKey := cfg.SecretKeys
	h := newHarness(t, cfg)
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	// Created first, so that its id (UUIDv7) comes first in any id order.
	lost := h.createWebhook(admin, "http://127.0.0.1:9/lost", "BOOKING_CREATED")
	kept := h.createWebhook(admin, "http://127.0.0.1:9/kept", "BOOKING_CREATED")
	sealUnder(t, h, lost, secrets.NewKeySpec("gone"))
	// Rewritten last, so that it comes after the lost one in table order too.
	if _, err := h.db.Exec(`UPDATE webhooks SET description = 'kept' WHERE id = $1`, kept.ID); err != nil {
		t.Fatal(err)
	}

	h.stop()
	h.cfg.SecretKeys = secrets.NewKeySpec("test2") + "," + oldKey // a new current key, the old one kept for reading
	h.start()
	keyOf := func(id string) string {
		var k string
		if err := h.db.Get(&k, `SELECT secret_key_id FROM webhooks WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
		return k
	}
	testkit.Eventually(t, 10*time.Second, "the readable secret re-encrypted with the new key", func() bool {
		return keyOf(kept.ID) == "test2"
	})
	if k := keyOf(lost.ID); k != "gone" {
		t.Fatalf("the unreadable secret is now under key %q, want it left under \"gone\"", k)
	}
}

// sealUnder stores w's secret sealed with keySpec ("id:base64key") in place
// of what the service sealed, as if its key had been changed behind it.
func sealUnder(t *testing.T, h *harness, w webhookOut, keySpec string) {
	t.Helper()
	ring, err := secrets.Parse(keySpec)
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.MustParse(w.ID)
	kid, ct := ring.Seal([]byte(w.Secret), id[:])
	if _, err := h.db.Exec(`UPDATE webhooks SET secret_key_id = $1, secret_ciphertext = $2 WHERE id = $3`, kid, ct, id); err != nil {
		t.Fatal(err)
	}
}
