package gateway

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzDecodePlain checks that any /ws client frame either is refused or
// decodes into a typed frame that encodes back to the same frame.
func FuzzDecodePlain(f *testing.F) {
	for _, s := range []string{
		`{"type":"auth","token":"eyJ.x.y","since":12}`, `{"type":"ping"}`, `{"type":"auth","since":-1}`,
		`{"type":""}`, `null`, `[]`, `"ping"`, `{"type":1}`, `{"type":"ping","since":18446744073709551616}`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := decodePlain(data)
		if err != nil {
			return
		}
		if in.Type == "" {
			t.Fatalf("%q decoded without a type", data)
		}
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodePlain(b)
		if err != nil || !reflect.DeepEqual(again, in) {
			t.Fatalf("%q decoded as %+v, re-encoded as %s, decoded again as %+v (%v)", data, in, b, again, err)
		}
	})
}
