package catalogue

import (
	"bytes"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Compile compiles the schema of typ with format assertions on.
func compile(t *testing.T, typ string) *jsonschema.Schema {
	t.Helper()
	raw, err := Schema(typ)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(typ+".json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(typ + ".json")
	if err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	return s
}

func TestEveryWebhookEventTypeHasASchemaWhoseExampleIsValid(t *testing.T) {
	entries, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(Types()) {
		t.Fatalf("%d entries for %d types", len(entries), len(Types()))
	}
	for _, e := range entries {
		s := compile(t, e.Type)
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(e.Example))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(inst); err != nil {
			t.Errorf("%s: its own example does not validate: %v", e.Type, err)
		}
		// The schema names its type: another type's body is refused.
		other, _ := jsonschema.UnmarshalJSON(bytes.NewReader(bytes.Replace(e.Example, []byte(`"type": "`+e.Type), []byte(`"type": "OTHER`), 1)))
		if bytes.Contains(e.Example, []byte(`"type": "`+e.Type)) && s.Validate(other) == nil {
			t.Errorf("%s: a body of another type validates", e.Type)
		}
	}
}
