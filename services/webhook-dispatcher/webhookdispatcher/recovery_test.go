package webhookdispatcher_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/pkg/webhook"
	"github.com/xpeditis/notify/services/webhook-dispatcher/webhookdispatcher"
)

type recoveryOut struct {
	ID                string `json:"id"`
	Status            string `json:"status"`
	EventsScanned     int    `json:"eventsScanned"`
	DeliveriesCreated int    `json:"deliveriesCreated"`
	Deliveries        struct {
		Pending, Succeeded, Failed int
	} `json:"deliveries"`
	Error *string `json:"error"`
}

func (h *harness) recovery(tok, webhookID, id string) recoveryOut {
	h.t.Helper()
	var r recoveryOut
	if code := h.call(http.MethodGet, "/api/v1/webhooks/"+webhookID+"/recoveries/"+id, tok, nil, &r); code != http.StatusOK {
		h.t.Fatalf("get recovery: status %d", code)
	}
	return r
}

// Events published while a webhook was off are sent again by a recovery,
// as new deliveries carrying the original event ids, and only the
// webhook's: not another organization's, not a type it does not take, not
// one before since. The recovery runs a few deliveries at a time
// (WEBHOOK_RECOVERY_BACKLOG), one recovery per webhook at a time, and goes
// on after a restart where it stopped, sending nothing twice.
func TestRecoveryResendsTheMissedEventsOnceAcrossARestart(t *testing.T) {
	cfg := testConfig(t)
	cfg.RecoveryBacklog = 2
	// The receiver refuses until the gate opens: the deliveries stay
	// pending, retried, without disabling the webhook.
	cfg.MaxAttempts, cfg.FailureThreshold, cfg.RetryMax = 20, 1000, time.Second
	h := newHarness(t, cfg)
	rcv := newReceiver(t)
	gate := make(chan struct{})
	rcv.setAnswer(func(int) (int, string) {
		select {
		case <-gate:
			return http.StatusOK, "ok"
		default:
			return http.StatusServiceUnavailable, "closed"
		}
	})
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	w := h.createWebhook(admin, rcv.srv.URL, "BOOKING_CREATED")
	if code := h.call(http.MethodPatch, "/api/v1/webhooks/"+w.ID, admin, map[string]any{"status": "INACTIVE"}, nil); code != http.StatusOK {
		t.Fatalf("turn off: %d", code)
	}
	h.publish(org, "BOOKING_CREATED", map[string]any{"n": -1}) // before since
	since := time.Now()
	var missed []string
	for i := range 6 {
		missed = append(missed, h.publish(org, "BOOKING_CREATED", map[string]any{"n": i}))
	}
	h.publish(testkit.UniqueID("other-org"), "BOOKING_CREATED", nil)
	h.publish(org, "RATE_QUOTED", nil)
	// The live consumer has handled them (while the webhook was off) before
	// it is turned on: otherwise they would be delivered live as well.
	// Acknowledged up to the last event stored: right after a publish ack
	// the consumer's pending count may not include the event yet.
	stream, err := h.nats.JS.Stream(t.Context(), natsx.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	sinfo, err := stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the live consumer to ack every event", func() bool {
		cons, err := h.nats.JS.Consumer(t.Context(), natsx.StreamEvents, webhookdispatcher.Name)
		if err != nil {
			return false
		}
		info, err := cons.Info(t.Context())
		return err == nil && info.AckFloor.Stream >= sinfo.State.LastSeq && info.NumPending == 0 && info.NumAckPending == 0
	})
	if code := h.call(http.MethodPatch, "/api/v1/webhooks/"+w.ID, admin, map[string]any{"status": "ACTIVE"}, nil); code != http.StatusOK {
		t.Fatalf("turn on: %d", code)
	}

	path := "/api/v1/webhooks/" + w.ID + "/recover"
	var rec recoveryOut
	if code := h.call(http.MethodPost, path, admin, map[string]any{"since": since.Format(time.RFC3339Nano)}, &rec); code != http.StatusAccepted || rec.Status != "RUNNING" {
		t.Fatalf("recover: %d %+v", code, rec)
	}
	// Its deliveries cannot finish while the receiver holds them: still running.
	var p problemOut
	if code := h.call(http.MethodPost, path, admin, map[string]any{"since": since.Format(time.RFC3339Nano)}, &p); code != http.StatusConflict || !strings.Contains(p.Detail, rec.ID) {
		t.Fatalf("second recovery: %d %q, want 409 naming %s", code, p.Detail, rec.ID)
	}
	testkit.Eventually(t, 10*time.Second, "the first deliveries of the recovery", func() bool {
		r := h.recovery(admin, w.ID, rec.ID)
		return r.DeliveriesCreated == cfg.RecoveryBacklog
	})
	h.stop()
	h.start()
	close(gate)
	var final recoveryOut
	testkit.Eventually(t, 30*time.Second, "the recovery to succeed", func() bool {
		final = h.recovery(admin, w.ID, rec.ID)
		return final.Status == "SUCCEEDED"
	})
	if final.DeliveriesCreated != len(missed) || final.Deliveries.Succeeded != len(missed) || final.Deliveries.Pending != 0 || final.Error != nil {
		t.Fatalf("recovery = %+v, want %d deliveries succeeded", final, len(missed))
	}
	// One delivery per missed event, its body carrying the original id.
	ids := map[string]string{} // event id -> delivery id
	for _, r := range rcv.requests() {
		var body struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatalf("body %q: %v", r.Body, err)
		}
		d := r.Header.Get(webhook.HeaderID)
		if prev, seen := ids[body.ID]; seen && prev != d {
			t.Fatalf("event %s sent as two deliveries, %s and %s", body.ID, prev, d)
		}
		ids[body.ID] = d
	}
	if len(ids) != len(missed) {
		t.Fatalf("the receiver got %d events, want the %d missed: %v", len(ids), len(missed), ids)
	}
	for _, id := range missed {
		if ids[id] == "" {
			t.Fatalf("missed event %s was not recovered", id)
		}
	}
	for _, d := range h.deliveries(admin, w.ID) {
		if d.RecoveryID != rec.ID {
			t.Fatalf("delivery %+v is not marked as recovered by %s", d, rec.ID)
		}
	}
}

func TestRecoverRefusesBadWindowsOtherOrganizationsAndReaders(t *testing.T) {
	h := newHarness(t, testConfig(t))
	rcv := newReceiver(t)
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")
	w := h.createWebhook(admin, rcv.srv.URL, "BOOKING_CREATED")
	h.publish(org, "BOOKING_CREATED", nil)
	path := "/api/v1/webhooks/" + w.ID + "/recover"
	now := time.Now().UTC()
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	bad := map[string]struct {
		body any
		want string
	}{
		"no since":          {map[string]any{}, "since: required"},
		"not a time":        {map[string]any{"since": "yesterday"}, `since: "yesterday" is not an RFC 3339 time`},
		"since in future":   {map[string]any{"since": at(time.Hour)}, "since: " + at(time.Hour) + " is in the future"},
		"until in future":   {map[string]any{"since": at(-time.Hour), "until": at(time.Hour)}, "until: " + at(time.Hour) + " is in the future"},
		"since after until": {map[string]any{"since": at(-time.Hour), "until": at(-2 * time.Hour)}, "since: " + at(-time.Hour) + " is not before until"},
		"window too long":   {map[string]any{"since": at(-8 * 24 * time.Hour)}, "at most 7 days"},
	}
	for name, c := range bad {
		var p problemOut
		if code := h.call(http.MethodPost, path, admin, c.body, &p); code != http.StatusBadRequest || !strings.Contains(p.Detail, c.want) {
			t.Errorf("%s: %d %q, want 400 naming %q", name, code, p.Detail, c.want)
		}
	}
	// Older than what EVENTS still holds (its first event is dropped, as
	// retention does): 409 naming the oldest available time.
	h.publish(org, "BOOKING_CREATED", nil)
	stream, err := h.nats.JS.Stream(t.Context(), natsx.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.DeleteMsg(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	stored := time.Now() // after the oldest event EVENTS holds
	var p problemOut
	if code := h.call(http.MethodPost, path, admin, map[string]any{"since": at(-time.Hour)}, &p); code != http.StatusConflict || !strings.Contains(p.Detail, "the oldest available is from "+now.Format("2006-01-02T")) {
		t.Errorf("before retention: %d %q, want 409 naming the oldest time", code, p.Detail)
	}
	ok := map[string]any{"since": stored.Format(time.RFC3339Nano)}
	if code := h.call(http.MethodPost, path, token(t, testkit.UniqueID("other"), "ADMIN"), ok, &p); code != http.StatusNotFound {
		t.Errorf("other organization: %d, want 404", code)
	}
	if code := h.call(http.MethodPost, path, token(t, org, "VIEWER"), ok, &p); code != http.StatusForbidden {
		t.Errorf("viewer: %d, want 403", code)
	}
	var rec recoveryOut
	if code := h.call(http.MethodPost, path, admin, ok, &rec); code != http.StatusAccepted {
		t.Fatalf("recover: %d", code)
	}
	recPath := "/api/v1/webhooks/" + w.ID + "/recoveries/" + rec.ID
	if code := h.call(http.MethodGet, recPath, token(t, testkit.UniqueID("other"), "ADMIN"), nil, nil); code != http.StatusNotFound {
		t.Errorf("other organization reads the recovery: %d, want 404", code)
	}
	if code := h.call(http.MethodGet, recPath, token(t, org, "VIEWER"), nil, nil); code != http.StatusOK {
		t.Errorf("viewer reads the recovery: %d, want 200", code)
	}
	// A webhook that is off cannot be recovered into.
	if code := h.call(http.MethodPatch, "/api/v1/webhooks/"+w.ID, admin, map[string]any{"status": "INACTIVE"}, nil); code != http.StatusOK {
		t.Fatalf("turn off: %d", code)
	}
	testkit.Eventually(t, 10*time.Second, "the first recovery to end", func() bool {
		return h.recovery(admin, w.ID, rec.ID).Status != "RUNNING"
	})
	if code := h.call(http.MethodPost, path, admin, ok, &p); code != http.StatusConflict || !strings.Contains(p.Detail, "INACTIVE") {
		t.Errorf("recover into an INACTIVE webhook: %d %q, want 409", code, p.Detail)
	}
}
