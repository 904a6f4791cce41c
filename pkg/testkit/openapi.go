package testkit

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// OpenAPI checks real responses against an OpenAPI 3.1 document: each
// response a test receives on a documented path must match the schema the
// document gives for its route, method, status and content type. Every
// service with an OpenAPI document checks it this way.
type OpenAPI struct {
	doc      map[string]any
	compiler *jsonschema.Compiler
	prefixes []string

	mu      sync.Mutex
	schemas map[string]*jsonschema.Schema // by JSON pointer
}

const openapiURL = "mem://openapi.json"

var openapiDocs sync.Map // file -> *OpenAPI

// LoadOpenAPI reads the document at file once per test binary; responses
// to paths under one of prefixes are checked.
func LoadOpenAPI(t testing.TB, file string, prefixes ...string) *OpenAPI {
	t.Helper()
	if o, ok := openapiDocs.Load(file); ok {
		return o.(*OpenAPI)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("openapi: %v", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("openapi: %s: %v", file, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(openapiURL, doc); err != nil {
		t.Fatalf("openapi: %s: %v", file, err)
	}
	m, ok := doc.(map[string]any)
	if !ok || m["openapi"] != "3.1.0" {
		t.Fatalf("openapi: %s is not an OpenAPI 3.1.0 document", file)
	}
	o, _ := openapiDocs.LoadOrStore(file, &OpenAPI{doc: m, compiler: c, prefixes: prefixes, schemas: map[string]*jsonschema.Schema{}})
	return o.(*OpenAPI)
}

// routeOf maps a request path to the document's path template; literal
// paths win over templates ({id}).
func (o *OpenAPI) routeOf(path string) string {
	paths := o.doc["paths"].(map[string]any)
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

func (o *OpenAPI) schema(ptr string) (*jsonschema.Schema, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if s, ok := o.schemas[ptr]; ok {
		return s, nil
	}
	s, err := o.compiler.Compile(openapiURL + ptr)
	if err != nil {
		return nil, err
	}
	o.schemas[ptr] = s
	return s, nil
}

// Check fails t unless the response matches the document. Paths outside
// the document's prefixes are not checked.
func (o *OpenAPI) Check(t testing.TB, method, path string, status int, contentType string, body []byte) {
	t.Helper()
	if err := o.check(method, path, status, contentType, body); err != nil {
		t.Fatalf("openapi: %v", err)
	}
}

func (o *OpenAPI) check(method, path string, status int, contentType string, body []byte) error {
	path, _, _ = strings.Cut(path, "?")
	if !o.covers(path) {
		return nil
	}
	route := o.routeOf(path)
	if route == "" {
		return fmt.Errorf("no path matches %s", path)
	}
	m := strings.ToLower(method)
	op, ok := o.doc["paths"].(map[string]any)[route].(map[string]any)[m].(map[string]any)
	if !ok {
		return fmt.Errorf("%s %s is not documented", method, route)
	}
	resp, ok := op["responses"].(map[string]any)[strconv.Itoa(status)].(map[string]any)
	if !ok {
		return fmt.Errorf("status %d of %s %s is not documented (body %s)", status, method, route, body)
	}
	ptr := fmt.Sprintf("#/paths/%s/%s/responses/%d", escapePointer(route), m, status)
	if ref, ok := resp["$ref"].(string); ok {
		ptr = ref
		resp = o.doc["components"].(map[string]any)["responses"].(map[string]any)[strings.TrimPrefix(ref, "#/components/responses/")].(map[string]any)
	}
	content, ok := resp["content"].(map[string]any)
	if !ok {
		if len(body) != 0 {
			return fmt.Errorf("%s %s %d documents no body, got %s", method, route, status, body)
		}
		return nil
	}
	ct, _, _ := strings.Cut(contentType, ";")
	if _, ok := content[ct]; !ok {
		return fmt.Errorf("%s %s %d: content type %q is not documented", method, route, status, ct)
	}
	sch, err := o.schema(ptr + "/content/" + escapePointer(ct) + "/schema")
	if err != nil {
		return fmt.Errorf("compile the schema of %s %s %d: %w", method, route, status, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %s %d: body is not JSON: %s", method, route, status, body)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("%s %s %d: response does not match the document: %v\nbody: %s", method, route, status, err, body)
	}
	return nil
}

func (o *OpenAPI) covers(path string) bool {
	for _, p := range o.prefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}
