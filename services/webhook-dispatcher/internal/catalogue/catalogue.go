// Package catalogue describes the webhook event types: for each, a
// description, the JSON Schema of the request body an integrator receives
// (schemas/<type>.json, the one source) and an example taken from it.
package catalogue

import (
	"embed"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/outbound"
)

//go:embed schemas/*.json
var schemas embed.FS

// Entry is one webhook event type.
type Entry struct {
	Type        string          `json:"type"`
	Description string          `json:"description"`
	Schema      json.RawMessage `json:"schema"`
	Example     json.RawMessage `json:"example"`
}

// Types lists the webhook event types: those of the domain events, then the
// test event.
func Types() []string { return append(slices.Clone(contract.WebhookEvents()), outbound.TestEvent) }

// Schema is the JSON Schema document of the body of event type typ.
func Schema(typ string) ([]byte, error) {
	return schemas.ReadFile("schemas/" + typ + ".json")
}

// Load reads every entry; an event type without a schema, or a schema
// without a description or an example, is an error (a test checks it).
func Load() ([]Entry, error) {
	var out []Entry
	for _, t := range Types() {
		raw, err := Schema(t)
		if err != nil {
			return nil, fmt.Errorf("webhook event %s: no schema: %w", t, err)
		}
		var doc struct {
			Description string            `json:"description"`
			Examples    []json.RawMessage `json:"examples"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			return nil, fmt.Errorf("webhook event %s: schema: %w", t, err)
		}
		if doc.Description == "" || len(doc.Examples) == 0 {
			return nil, fmt.Errorf("webhook event %s: the schema needs a description and an example", t)
		}
		out = append(out, Entry{Type: t, Description: doc.Description, Schema: raw, Example: doc.Examples[0]})
	}
	return out, nil
}
