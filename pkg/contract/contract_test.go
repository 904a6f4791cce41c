package contract_test

import (
	"strings"
	"testing"

	"github.com/xpeditis/notify/pkg/contract"
)

func TestDecodeAcceptsTheProto3JSONOfTheContract(t *testing.T) {
	ev, err := contract.Decode([]byte(`{
		"id": "6f1c", "type": "BOOKING_CREATED", "occurredAt": "2026-11-27T10:00:00Z",
		"organizationId": "org-42", "recipients": ["user-7"], "priority": "HIGH",
		"title": "t", "message": "m", "data": {"bookingId": "BK-1"}, "futureField": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	if ev.GetId() != "6f1c" || ev.GetOrganizationId() != "org-42" || ev.GetRecipients()[0] != "user-7" ||
		ev.GetData().GetFields()["bookingId"].GetStringValue() != "BK-1" || ev.GetOccurredAt().AsTime().Hour() != 10 {
		t.Fatalf("decoded %v", ev)
	}
}

func TestDecodeRefusesWithAReason(t *testing.T) {
	for body, want := range map[string]string{
		`{`:                                      "cannot decode",
		`{"type":"SYSTEM","organizationId":"o"}`: "id is required",
		`{"id":"1","organizationId":"o"}`:        "type is required",
		`{"id":"1","type":"NOPE","organizationId":"o"}`:                                              "unknown type",
		`{"id":"1","type":"SYSTEM"}`:                                                                 "organizationId is required",
		`{"id":"1","type":"SYSTEM","organizationId":"o","priority":"HUGE"}`:                          "unknown priority",
		`{"id":"1","type":"SYSTEM","organizationId":"o","recipients":[""]}`:                          "recipient 0",
		`{"id":"1","type":"SYSTEM","organizationId":"o","recipients":"u"}`:                           "cannot decode",
		`{"id":"` + strings.Repeat("x", 201) + `","type":"SYSTEM","organizationId":"o"}`:             "id is longer",
		`{"id":"1","type":"SYSTEM","organizationId":"o","title":"` + strings.Repeat("x", 201) + `"}`: "title is longer",
		strings.Repeat(" ", contract.MaxEventBytes+1):                                                "over the limit",
	} {
		_, err := contract.Decode([]byte(body))
		if !contract.IsInvalid(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("%.60s: error %v, want an invalid-event error naming %q", body, err, want)
		}
	}
}

func TestTheTableListsEveryTypeOnce(t *testing.T) {
	types := contract.EventTypes()
	if len(types) != 12 {
		t.Fatalf("%d types", len(types))
	}
	for _, typ := range types {
		if _, ok := contract.RouteOf(typ); !ok {
			t.Errorf("%s has no route", typ)
		}
	}
	if got := strings.Join(contract.WebhookEvents(), ","); got != "BOOKING_CREATED,BOOKING_UPDATED,BOOKING_CANCELLED,RATE_QUOTED,CARRIER_ACCEPTED,CARRIER_REJECTED,PAYMENT_SUCCESS,PAYMENT_FAILED" {
		t.Errorf("webhook events %s", got)
	}
	// BOOKING_STATUS_CHANGED is delivered as BOOKING_UPDATED, so nine types
	// feed the eight webhook events.
	if got := strings.Join(contract.WebhookEventSubjects(), ","); got != "events.BOOKING_CREATED,events.BOOKING_UPDATED,events.BOOKING_STATUS_CHANGED,events.BOOKING_CANCELLED,events.RATE_QUOTED,events.CARRIER_ACCEPTED,events.CARRIER_REJECTED,events.PAYMENT_SUCCESS,events.PAYMENT_FAILED" {
		t.Errorf("webhook event subjects %s", got)
	}
	if got := len(contract.NotificationTypes()); got != 9 {
		t.Errorf("%d notification types, want 9", got)
	}
}
