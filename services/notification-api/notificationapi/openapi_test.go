package notificationapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The OpenAPI document is checked against real responses: every response a
// test receives must match the schema the document gives for its route,
// method, status and content type.

var openapi struct {
	once     sync.Once
	err      error
	doc      map[string]any
	compiler *jsonschema.Compiler
	schemas  sync.Map // pointer -> *jsonschema.Schema
}

const openapiURL = "mem://openapi.json"

func loadOpenAPI() error {
	openapi.once.Do(func() {
		raw, err := os.ReadFile("../internal/api/openapi.json")
		if err != nil {
			openapi.err = err
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			openapi.err = err
			return
		}
		openapi.doc = doc.(map[string]any)
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		c.AssertFormat()
		if err := c.AddResource(openapiURL, doc); err != nil {
			openapi.err = err
			return
		}
		openapi.compiler = c
	})
	return openapi.err
}

// routeOf maps a request path to the document's path template; literal
// paths (read-all) win over templates ({id}).
func routeOf(path string) string {
	path, _, _ = strings.Cut(path, "?")
	paths := openapi.doc["paths"].(map[string]any)
	if _, ok := paths[path]; ok {
		return path
	}
	segs := strings.Split(path, "/")
	for tmpl := range paths {
		tsegs := strings.Split(tmpl, "/")
		if len(tsegs) != len(segs) {
			continue
		}
		match := true
		for i := range tsegs {
			if tsegs[i] != segs[i] && !strings.HasPrefix(tsegs[i], "{") {
				match = false
				break
			}
		}
		if match {
			return tmpl
		}
	}
	return ""
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func checkAgainstOpenAPI(t testing.TB, method, path string, r response) {
	t.Helper()
	if err := loadOpenAPI(); err != nil {
		t.Fatalf("openapi: %v", err)
	}
	if !strings.HasPrefix(path, "/api/v1/notifications") {
		return
	}
	route := routeOf(path)
	if route == "" {
		t.Fatalf("openapi: no path matches %s", path)
	}
	op, ok := openapi.doc["paths"].(map[string]any)[route].(map[string]any)[strings.ToLower(method)].(map[string]any)
	if !ok {
		t.Fatalf("openapi: %s %s is not documented", method, route)
	}
	resp, ok := op["responses"].(map[string]any)[strconv.Itoa(r.Status)].(map[string]any)
	if !ok {
		t.Fatalf("openapi: status %d of %s %s is not documented (body %s)", r.Status, method, route, r.Body)
	}
	ptr := fmt.Sprintf("#/paths/%s/%s/responses/%d", escapePointer(route), strings.ToLower(method), r.Status)
	if ref, ok := resp["$ref"].(string); ok {
		ptr = ref
		resp = openapi.doc["components"].(map[string]any)["responses"].(map[string]any)[strings.TrimPrefix(ref, "#/components/responses/")].(map[string]any)
	}
	content, ok := resp["content"].(map[string]any)
	if !ok {
		if len(r.Body) != 0 {
			t.Fatalf("openapi: %s %s %d documents no body, got %s", method, route, r.Status, r.Body)
		}
		return
	}
	ct, _, _ := strings.Cut(r.ContentType, ";")
	if _, ok := content[ct]; !ok {
		t.Fatalf("openapi: %s %s %d: content type %q is not documented", method, route, r.Status, ct)
	}
	schemaPtr := ptr + "/content/" + escapePointer(ct) + "/schema"
	sch, ok := openapi.schemas.Load(schemaPtr)
	if !ok {
		compiled, err := openapi.compiler.Compile(openapiURL + schemaPtr)
		if err != nil {
			t.Fatalf("openapi: compile %s: %v", schemaPtr, err)
		}
		sch, _ = openapi.schemas.LoadOrStore(schemaPtr, compiled)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.Body))
	if err != nil {
		t.Fatalf("openapi: %s %s %d: body is not JSON: %s", method, route, r.Status, r.Body)
	}
	if err := sch.(*jsonschema.Schema).Validate(inst); err != nil {
		t.Fatalf("openapi: %s %s %d: response does not match the document: %v\nbody: %s", method, route, r.Status, err, r.Body)
	}
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
