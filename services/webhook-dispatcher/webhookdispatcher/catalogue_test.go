package webhookdispatcher_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/pkg/webhook"
)

type catalogueOut struct {
	Data []struct {
		Type        string          `json:"type"`
		Description string          `json:"description"`
		Schema      json.RawMessage `json:"schema"`
		Example     json.RawMessage `json:"example"`
	} `json:"data"`
}

// Every webhook event type the catalogue lists has a schema that real
// delivered bodies satisfy: one event of each domain type that produces a
// delivery (its data taken from the catalogue's example), and a test
// delivery, are received by a real endpoint and validated with a JSON
// Schema validator against the schemas the API serves.
func TestDeliveredBodiesOfEveryTypeMatchTheCatalogueSchemas(t *testing.T) {
	h := newHarness(t, testConfig(t))
	rcv := newReceiver(t)
	org := testkit.UniqueID("org")
	admin := token(t, org, "ADMIN")

	var cat catalogueOut
	if code := h.call(http.MethodGet, "/api/v1/webhook-events", "", nil, &cat); code != http.StatusOK {
		t.Fatalf("catalogue: %d", code)
	}
	schemas := map[string]*jsonschema.Schema{}
	examples := map[string]map[string]any{}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for _, e := range cat.Data {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(e.Schema))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource(e.Type+".json", doc); err != nil {
			t.Fatal(err)
		}
		if schemas[e.Type], err = c.Compile(e.Type + ".json"); err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
		var ex struct {
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal(e.Example, &ex); err != nil || e.Description == "" {
			t.Fatalf("%s: example %s, description %q", e.Type, e.Example, e.Description)
		}
		examples[e.Type] = ex.Data
	}
	want := append(contract.WebhookEvents(), "WEBHOOK_TEST")
	for _, typ := range want {
		if schemas[typ] == nil {
			t.Fatalf("the catalogue has no schema for %s", typ)
		}
	}

	w := h.createWebhook(admin, rcv.srv.URL, contract.WebhookEvents()...)
	if code := h.call(http.MethodPost, "/api/v1/webhooks/"+w.ID+"/test", admin, nil, nil); code != http.StatusOK {
		t.Fatalf("test delivery: %d", code)
	}
	sent := 1
	for _, domain := range contract.EventTypes() {
		route, _ := contract.RouteOf(domain)
		if route.Webhook == "" {
			continue
		}
		h.publish(org, domain, examples[route.Webhook])
		sent++
	}
	testkit.Eventually(t, 15*time.Second, "every delivery", func() bool { return rcv.count() == sent })
	var seen []string
	for _, r := range rcv.requests() {
		typ := r.Header.Get(webhook.HeaderEvent)
		s := schemas[typ]
		if s == nil {
			t.Fatalf("delivered type %q has no schema", typ)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.Body))
		if err != nil {
			t.Fatalf("%s: body %q: %v", typ, r.Body, err)
		}
		if err := s.Validate(inst); err != nil {
			t.Errorf("%s: the delivered body does not match its schema: %v\nbody: %s", typ, err, r.Body)
		}
		if !slices.Contains(seen, typ) {
			seen = append(seen, typ)
		}
	}
	for _, typ := range want {
		if !slices.Contains(seen, typ) {
			t.Errorf("no %s body was delivered and checked", typ)
		}
	}
}
