package webhookdispatcher_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/pkg/webhook"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/secrets"
	"github.com/xpeditis/notify/services/webhook-dispatcher/webhookdispatcher"
)

type rotateOut struct {
	Secret                  string     `json:"secret"`
	PreviousSecretExpiresAt *time.Time `json:"previousSecretExpiresAt"`
	Webhook                 struct {
		SecretHint              string     `json:"secretHint"`
		PreviousSecretExpiresAt *time.Time `json:"previousSecretExpiresAt"`
	} `json:"webhook"`
}

// verifies reports whether the Standard Webhooks library, holding secret,
// accepts a received delivery.
func verifies(t *testing.T, secret string, r received) bool {
	t.Helper()
	// The library takes a "whsec_" secret as such, and any other as raw
	// key bytes, as the dispatcher does.
	wh, err := standardwebhooks.NewWebhookRaw([]byte(secret))
	if strings.HasPrefix(secret, webhook.SecretPrefix) {
		wh, err = standardwebhooks.NewWebhook(secret)
	}
	if err != nil {
		t.Fatalf("standardwebhooks.NewWebhook: %v", err)
	}
	return wh.Verify(r.Body, r.Header) == nil
}

// deliverOne publishes an event and returns what the receiver got for it.
func deliverOne(t *testing.T, h *harness, rcv *receiver, org string) received {
	t.Helper()
	before := rcv.count()
	h.publish(org, "BOOKING_CREATED", map[string]any{"bookingId": "BK-1"})
	testkit.Eventually(t, 10*time.Second, "one more delivery", func() bool { return rcv.count() == before+1 })
	return rcv.requests()[before]
}

// Before, during and after a rotation's overlap, deliveries verify with the
// real Standard Webhooks library under the secrets the integrator may hold:
// during the overlap both the old and the new; after it only the new one.
// X-Webhook-Signature (one value) keeps the old secret until the overlap
// ends, then switches.
func TestRotatedSecretSignsWithBothUntilTheOverlapEnds(t *testing.T) {
	h := newHarness(t, testConfig(t))
	rcv := newReceiver(t)
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	w := h.createWebhook(admin, rcv.srv.URL, "BOOKING_CREATED")
	old := w.Secret

	before := deliverOne(t, h, rcv, org)
	if !verifies(t, old, before) || webhook.VerifyLegacy(old, before.Body, before.Header.Get(webhook.HeaderSignature)) != nil {
		t.Fatalf("before the rotation the delivery does not verify with the secret")
	}

	const overlap = time.Hour
	var rot rotateOut
	asked := time.Now()
	if code := h.call(http.MethodPost, "/api/v1/webhooks/"+w.ID+"/rotate-secret", admin, map[string]any{"overlap": overlap.String()}, &rot); code != http.StatusOK {
		t.Fatalf("rotate: status %d", code)
	}
	if !strings.HasPrefix(rot.Secret, webhook.SecretPrefix) || rot.Secret == old || rot.PreviousSecretExpiresAt == nil {
		t.Fatalf("rotate answered %+v", rot)
	}
	until := *rot.PreviousSecretExpiresAt
	if d := until.Sub(asked); d < overlap-time.Second || d > overlap+5*time.Second {
		t.Fatalf("the old secret stops at %s, %s after the request; want about %s", until, d, overlap)
	}
	if got := h.webhook(admin, w.ID); !strings.HasSuffix(rot.Secret, strings.TrimPrefix(got.SecretHint, "…")) {
		t.Fatalf("hint %q is not the new secret's", got.SecretHint)
	}

	during := deliverOne(t, h, rcv, org)
	if !verifies(t, old, during) || !verifies(t, rot.Secret, during) {
		t.Fatalf("during the overlap the delivery must verify with both secrets; webhook-signature %q", during.Header.Get(webhook.HeaderStdSignature))
	}
	if len(strings.Fields(during.Header.Get(webhook.HeaderStdSignature))) != 2 {
		t.Fatalf("webhook-signature = %q, want two signatures", during.Header.Get(webhook.HeaderStdSignature))
	}
	if webhook.VerifyLegacy(old, during.Body, during.Header.Get(webhook.HeaderSignature)) != nil {
		t.Fatalf("during the overlap X-Webhook-Signature must keep the old secret")
	}

	// The overlap ends: its switch time moves to now, as an hour passing
	// would, and the change is announced as a replica announces one, so
	// that the dispatcher signs from the stored row again. Then only the
	// new secret.
	if _, err := h.db.Exec(`UPDATE webhooks SET previous_secret_until = now() WHERE id = $1`, w.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.nats.Conn.Publish(webhookdispatcher.InvalidationSubject, []byte(org)); err != nil {
		t.Fatal(err)
	}
	if err := h.nats.Conn.Flush(); err != nil {
		t.Fatal(err)
	}
	after := deliverOne(t, h, rcv, org)
	if verifies(t, old, after) || !verifies(t, rot.Secret, after) {
		t.Fatalf("after the overlap only the new secret may verify; webhook-signature %q", after.Header.Get(webhook.HeaderStdSignature))
	}
	if webhook.VerifyLegacy(rot.Secret, after.Body, after.Header.Get(webhook.HeaderSignature)) != nil {
		t.Fatalf("after the overlap X-Webhook-Signature must use the new secret")
	}
	if got := h.webhook(admin, w.ID); got.Secret != "" {
		t.Fatalf("the secret is shown again: %+v", got)
	}
}

// Rotating during an overlap replaces the pending previous secret: the
// secret in use until then signs next to the newest, and the oldest stops.
// The test delivery (POST …/test) is signed the same way.
func TestRotationDuringAnOverlapReplacesThePendingPreviousSecret(t *testing.T) {
	h := newHarness(t, testConfig(t))
	rcv := newReceiver(t)
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	w := h.createWebhook(admin, rcv.srv.URL, "BOOKING_CREATED")
	var first, second rotateOut
	path := "/api/v1/webhooks/" + w.ID + "/rotate-secret"
	if code := h.call(http.MethodPost, path, admin, map[string]any{}, &first); code != http.StatusOK {
		t.Fatalf("first rotation: %d", code)
	}
	if d := time.Until(*first.PreviousSecretExpiresAt); d < 23*time.Hour || d > 24*time.Hour {
		t.Fatalf("default overlap ends in %s, want 24h", d)
	}
	mine := "my-own-secret-0123456789"
	if code := h.call(http.MethodPost, path, admin, map[string]any{"secret": mine, "overlap": "1h"}, &second); code != http.StatusOK || second.Secret != mine {
		t.Fatalf("second rotation: %d %+v", code, second)
	}
	if code := h.call(http.MethodPost, "/api/v1/webhooks/"+w.ID+"/test", admin, nil, nil); code != http.StatusOK {
		t.Fatalf("test: %d", code)
	}
	got := deliverOne(t, h, rcv, org)
	for _, r := range []received{rcv.requests()[0], got} {
		if !verifies(t, mine, r) || !verifies(t, first.Secret, r) || verifies(t, w.Secret, r) {
			t.Fatalf("after a rotation during an overlap: want the newest and the one in use, not the oldest; %q", r.Header.Get(webhook.HeaderStdSignature))
		}
		if webhook.VerifyLegacy(first.Secret, r.Body, r.Header.Get(webhook.HeaderSignature)) != nil {
			t.Fatalf("X-Webhook-Signature must carry the pending previous secret")
		}
	}

	// No overlap: replaced at once.
	var now rotateOut
	if code := h.call(http.MethodPost, path, admin, map[string]any{"overlap": "0s"}, &now); code != http.StatusOK || now.PreviousSecretExpiresAt != nil || now.Webhook.PreviousSecretExpiresAt != nil {
		t.Fatalf("rotation without overlap: %d %+v", code, now)
	}
	got = deliverOne(t, h, rcv, org)
	if !verifies(t, now.Secret, got) || verifies(t, mine, got) || len(strings.Fields(got.Header.Get(webhook.HeaderStdSignature))) != 1 {
		t.Fatalf("without overlap only the new secret signs: %q", got.Header.Get(webhook.HeaderStdSignature))
	}
}

func TestRotateSecretRefusesBadInputOtherOrganizationsAndReaders(t *testing.T) {
	h := newHarness(t, testConfig(t))
	rcv := newReceiver(t)
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	w := h.createWebhook(admin, rcv.srv.URL, "BOOKING_CREATED")
	path := "/api/v1/webhooks/" + w.ID + "/rotate-secret"
	bad := map[string]struct {
		body any
		want string
	}{
		"overlap too long": {map[string]any{"overlap": "169h"}, "overlap: must be a duration from 0s to 168h"},
		"negative overlap": {map[string]any{"overlap": "-1h"}, "overlap:"},
		"not a duration":   {map[string]any{"overlap": "a day"}, `got "a day"`},
		"short secret":     {map[string]any{"secret": "short"}, "secret: must be"},
		"unknown field":    {map[string]any{"overlapp": "1h"}, "body:"},
	}
	for name, c := range bad {
		var p problemOut
		if code := h.call(http.MethodPost, path, admin, c.body, &p); code != http.StatusBadRequest || !strings.Contains(p.Detail, c.want) {
			t.Errorf("%s: %d %q, want 400 naming %q", name, code, p.Detail, c.want)
		}
	}
	var p problemOut
	if code := h.call(http.MethodPost, path, token(t, testkit.UniqueID("other"), "ADMIN"), map[string]any{}, &p); code != http.StatusNotFound {
		t.Errorf("other organization: %d, want 404", code)
	}
	if code := h.call(http.MethodPost, path, token(t, org, "VIEWER"), map[string]any{}, &p); code != http.StatusForbidden {
		t.Errorf("viewer: %d, want 403", code)
	}
	// Nothing changed: the original secret still signs alone.
	got := deliverOne(t, h, rcv, org)
	if !verifies(t, w.Secret, got) || len(strings.Fields(got.Header.Get(webhook.HeaderStdSignature))) != 1 {
		t.Fatalf("a refused rotation changed the secret")
	}
}

// The secret a rotation replaced is re-encrypted with a new current key
// like the current secret, so that the old key can be retired during an
// overlap: with only the new key, both secrets still sign.
func TestKeyRotationReencryptsThePreviousSecretOfAnOverlap(t *testing.T) {
	cfg := testConfig(t)
	oldKey := cfg.SecretKeys
	h := newHarness(t, cfg)
	rcv := newReceiver(t)
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	w := h.createWebhook(admin, rcv.srv.URL, "BOOKING_CREATED")
	var rot rotateOut
	if code := h.call(http.MethodPost, "/api/v1/webhooks/"+w.ID+"/rotate-secret", admin, map[string]any{"overlap": "1h"}, &rot); code != http.StatusOK {
		t.Fatalf("rotate: %d", code)
	}
	h.stop()
	newKey := secrets.NewKeySpec("test2")
	h.cfg.SecretKeys = newKey + "," + oldKey
	h.start()
	testkit.Eventually(t, 10*time.Second, "both secrets under the new key", func() bool {
		var keys []string
		err := h.db.Select(&keys, `SELECT secret_key_id FROM webhooks WHERE id = $1 UNION ALL SELECT previous_secret_key_id FROM webhooks WHERE id = $1`, w.ID)
		return err == nil && len(keys) == 2 && keys[0] == "test2" && keys[1] == "test2"
	})
	h.stop()
	h.cfg.SecretKeys = newKey // the old key retired
	h.start()
	got := deliverOne(t, h, rcv, org)
	if !verifies(t, w.Secret, got) || !verifies(t, rot.Secret, got) {
		t.Fatalf("with the old key retired, both secrets must still sign during the overlap: %q", got.Header.Get(webhook.HeaderStdSignature))
	}
}
