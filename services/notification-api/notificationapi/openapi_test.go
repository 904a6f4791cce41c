package notificationapi_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/xpeditis/notify/pkg/testkit"
)

// checkAgainstOpenAPI fails t unless a response matches the OpenAPI
// document (the shared check of testkit.OpenAPI).
func checkAgainstOpenAPI(t testing.TB, method, path string, r response) {
	t.Helper()
	testkit.LoadOpenAPI(t, "../internal/api/openapi.json", "/api/v1/notifications").Check(t, method, path, r.Status, r.ContentType, r.Body)
}

func TestOpenAPIDocumentIsServed(t *testing.T) {
	h := start(t)
	r := h.do(http.MethodGet, "/api/v1/openapi.json", "", "")
	if r.Status != http.StatusOK {
		t.Fatalf("status %d", r.Status)
	}
	var doc map[string]any
	r.decode(t, &doc)
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi version %v", doc["openapi"])
	}
	if err := json.Unmarshal(r.Body, new(any)); err != nil {
		t.Fatal(err)
	}
}
