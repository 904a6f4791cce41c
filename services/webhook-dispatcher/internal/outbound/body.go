package outbound

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/xpeditis/notify/pkg/contract"
)

// TestEvent is the webhook event name of test deliveries.
const TestEvent = "WEBHOOK_TEST"

// body is what the integrator receives (its JSON Schema per event type is
// in the catalogue, schemas/).
type body struct {
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	CreatedAt      string          `json:"createdAt"`
	OrganizationID string          `json:"organizationId"`
	Data           json.RawMessage `json:"data"`
}

// Body encodes the request body of an event: {"id","type","createdAt",
// "organizationId","data"}, with the webhook event name as type and the
// time the event occurred, or stored (when it entered EVENTS) when the
// producer gave none.
// The data is copied as the producer wrote it (contract.DecodeReceived).
func Body(ev contract.Received, webhookEvent string, stored time.Time) ([]byte, error) {
	created := stored
	if ev.GetOccurredAt() != nil {
		created = ev.GetOccurredAt().AsTime()
	}
	return encode(body{
		ID: ev.GetId(), Type: webhookEvent, CreatedAt: created.UTC().Format(time.RFC3339Nano),
		OrganizationID: ev.GetOrganizationId(), Data: ev.Data,
	})
}

// TestBody is the body of a test delivery to a webhook.
func TestBody(id, org, webhookID string, at time.Time) ([]byte, error) {
	data, err := json.Marshal(map[string]string{"webhookId": webhookID, "message": "Test delivery from Xpeditis"})
	if err != nil {
		return nil, err
	}
	return encode(body{
		ID: id, Type: TestEvent, CreatedAt: at.UTC().Format(time.RFC3339Nano), OrganizationID: org, Data: data,
	})
}

// encode writes JSON as integrators expect it: "<", ">" and "&" as they are,
// not HTML-escaped, and no trailing newline.
func encode(b body) ([]byte, error) {
	if len(b.Data) == 0 {
		b.Data = json.RawMessage("{}")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(b); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}
