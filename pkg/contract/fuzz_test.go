package contract_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/xpeditis/notify/pkg/contract"
)

// FuzzDecode: whatever a producer publishes, Decode does not panic and
// either refuses it with an InvalidEventError of a known kind (which
// consumers dead-letter) or returns an event that passes Validate, encodes,
// decodes back to the same event, and maps each recipient to exactly one
// NATS subject token.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"id":"6f1c","type":"BOOKING_CREATED","occurredAt":"2026-11-27T10:00:00Z","organizationId":"org-42","recipients":["user-7"],"priority":"HIGH","title":"t","message":"m","data":{"bookingId":"BK-1"},"futureField":1}`))
	f.Add([]byte(`{"id":"1","type":"SYSTEM","organizationId":"o","recipients":["a.b","*",">","",  "é"]}`))
	f.Add([]byte(`{"id":"1","type":"SYSTEM","organizationId":"o","data":{"a":[1,{"b":null}]}}`))
	f.Add([]byte(`{`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := contract.Decode(data)
		if err != nil {
			var ie *contract.InvalidEventError
			if !errors.As(err, &ie) || !slices.Contains([]string{"decode", "too_large", "unknown_type", "invalid"}, ie.Kind) {
				t.Fatalf("Decode error %v is not an invalid-event error of a known kind", err)
			}
			return
		}
		if err := contract.Validate(ev); err != nil {
			t.Fatalf("Decode accepted an event Validate refuses: %v", err)
		}
		enc, err := contract.Encode(ev)
		if err != nil {
			t.Fatalf("an accepted event does not encode: %v", err)
		}
		again, err := contract.Decode(enc)
		if err != nil || !proto.Equal(ev, again) {
			t.Fatalf("an accepted event does not survive a round trip: %v\n%v\n%v", err, ev, again)
		}
		for _, r := range ev.GetRecipients() {
			if tok := contract.SubjectToken(r); tok == "" || strings.ContainsAny(tok, ". *>\t\r\n") {
				t.Fatalf("recipient %q maps to subject token %q", r, tok)
			}
		}
	})
}
