package webhookdispatcher_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/xpeditis/notify/pkg/contract"
)

// The document is served without a token, and its list of webhook event
// names is the contract's.
func TestWebhookOpenAPIDocumentIsServedAndNamesTheContractsEvents(t *testing.T) {
	h := newHarness(t, testConfig(t))
	var doc struct {
		OpenAPI    string `json:"openapi"`
		Components struct {
			Schemas struct {
				WebhookEvent struct {
					Enum []string `json:"enum"`
				} `json:"WebhookEvent"`
			} `json:"schemas"`
		} `json:"components"`
		Paths map[string]json.RawMessage `json:"paths"`
	}
	if code := h.call(http.MethodGet, "/api/v1/webhooks/openapi.json", "", nil, &doc); code != http.StatusOK || doc.OpenAPI != "3.1.0" {
		t.Fatalf("GET openapi.json: %d, version %q", code, doc.OpenAPI)
	}
	if got, want := doc.Components.Schemas.WebhookEvent.Enum, contract.WebhookEvents(); !slices.Equal(got, want) {
		t.Fatalf("the document's WebhookEvent enum is %v, the contract's %v", got, want)
	}
	for _, p := range []string{"/api/v1/webhooks/{id}/rotate-secret", "/api/v1/webhooks/{id}/recover", "/api/v1/webhooks/{id}/stats", "/api/v1/webhook-events"} {
		if doc.Paths[p] == nil {
			t.Errorf("%s is not documented", p)
		}
	}
}
