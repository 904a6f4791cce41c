package webhookdispatcher_test

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/testkit"
)

type nodeVerdict struct {
	Port             int    `json:"port"`
	Snippet          bool   `json:"snippet"`
	Standard         bool   `json:"standard"`
	StandardError    string `json:"standardError"`
	TamperedAccepted bool   `json:"tamperedAccepted"`
	WebhookID        string `json:"webhookId"`
	XWebhookID       string `json:"xWebhookId"`
	Body             string `json:"body"`
}

// startNodeReceiver runs e2e/receiver.mjs, gives it the secret once the
// webhook exists, and streams its verdicts.
func startNodeReceiver(t *testing.T) (port int, giveSecret func(string), verdicts <-chan nodeVerdict) {
	t.Helper()
	dir, _ := filepath.Abs("../e2e")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "standardwebhooks")); err != nil {
		t.Fatal("the Node receiver's packages are missing: run scripts/test-setup-dispatcher.sh (make test does)")
	}
	out := make(chan nodeVerdict, 16)
	stdin := testkit.NodeScript(t, dir, "receiver.mjs", func(line []byte) {
		var v nodeVerdict
		if err := json.Unmarshal(line, &v); err == nil {
			out <- v
		}
	})
	select {
	case v := <-out:
		if v.Port == 0 {
			t.Fatalf("node receiver said %+v before its port", v)
		}
		port = v.Port
	case <-time.After(15 * time.Second):
		t.Fatal("node receiver did not start within 15s")
	}
	return port, func(secret string) { _, _ = io.WriteString(stdin, secret+"\n") }, out
}

// The integrators' JavaScript snippet and the npm standardwebhooks package
// both verify a real delivery.
func TestNodeReceiverVerifiesDeliveries(t *testing.T) {
	port, giveSecret, verdicts := startNodeReceiver(t)
	h := newHarness(t, testConfig(t))
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	w := h.createWebhook(admin, "http://127.0.0.1:"+strconv.Itoa(port)+"/webhooks/xpeditis", "BOOKING_CANCELLED")
	giveSecret(w.Secret)

	eventID := h.publish(org, "BOOKING_CANCELLED", map[string]any{"bookingId": "BK-42", "reason": "client request — «annulé»"})
	var v nodeVerdict
	select {
	case v = <-verdicts:
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery reached the node receiver within 10s")
	}
	if !v.Snippet || !v.Standard || v.TamperedAccepted {
		t.Fatalf("node verdict: snippet %v, standardwebhooks %v (%s), tampered body accepted %v", v.Snippet, v.Standard, v.StandardError, v.TamperedAccepted)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(v.Body), &body); err != nil || body["id"] != eventID {
		t.Fatalf("body %q", v.Body)
	}
	testkit.Eventually(t, 5*time.Second, "the delivery to be SUCCEEDED with the receiver's answer", func() bool {
		ds := h.deliveries(admin, w.ID)
		return len(ds) == 1 && ds[0].Status == "SUCCEEDED" && ds[0].ID == v.XWebhookID && ds[0].ID == v.WebhookID &&
			ds[0].Attempts[len(ds[0].Attempts)-1].ResponseExcerpt == "verified"
	})
}
