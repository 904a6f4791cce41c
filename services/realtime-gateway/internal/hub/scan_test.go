package hub

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzScanValue checks validValue against encoding/json: the same verdict
// on every value without whitespace around it, except that validValue may
// refuse (never accept) data nested deeper than maxScanDepth.
func FuzzScanValue(f *testing.F) {
	for _, v := range []string{
		`null`, `true`, `false`, `0`, `-0`, `-0.5e+10`, `1E-7`, `01`, `-`, `1.`, `.5`, `1e`, `+1`,
		`""`, `"a\"b\\c\/\b\f\n\r\t\u00e9\uD83D"`, `"\x"`, `"\u12G4"`, "\"\x01\"", "\"\xff\xfe\"", `"abc`,
		`[]`, `{}`, `[ ]`, `{ }`, `[1,2 , 3]`, `[1,]`, `[,1]`, `{"a":1,"b":[true,{"c":null}]}`,
		`{"a" : 1 , "b" : 2}`, `{"a":1,}`, `{"a"}`, `{1:2}`, `{"a":1 "b":2}`, `[1 2]`, `[}`, `{]`,
		`truex`, `nul`, `[[[[]]]]`, `1 `, ` 1`, `1 2`, `"a"b`, `{"a":{"b":{"c":"d"}}}`,
		strings.Repeat("[", maxScanDepth) + strings.Repeat("]", maxScanDepth),
		strings.Repeat("[", maxScanDepth+1) + strings.Repeat("]", maxScanDepth+1),
	} {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := validValue(b)
		trimmed := len(b) > 0 && len(bytes.TrimSpace(b)) == len(b)
		want := trimmed && json.Valid(b)
		if got && !want {
			t.Fatalf("validValue accepts %q, encoding/json does not", b)
		}
		if want && !got && depth(b) <= maxScanDepth {
			t.Fatalf("validValue refuses %q, encoding/json accepts it", b)
		}
	})
}

// depth is how deeply the valid JSON b nests arrays and objects.
func depth(b []byte) int {
	d, most := 0, 0
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := dec.Token()
		if err != nil {
			return most
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			d++
			most = max(most, d)
		case json.Delim(']'), json.Delim('}'):
			d--
		}
	}
}

func TestCanonicalBody(t *testing.T) {
	body := notificationBody(t)
	event, data, ok := canonicalBody(body)
	var um struct {
		Event string
		Data  json.RawMessage
	}
	if err := json.Unmarshal(body, &um); err != nil {
		t.Fatal(err)
	}
	if !ok || event != um.Event || !bytes.Equal(data, um.Data) {
		t.Fatalf("canonicalBody(%s) = %q %s %v", body, event, data, ok)
	}
	for _, b := range []string{
		`{"event":"n","data":1,"data":2}`, // the last one counts: encoding/json decides
		`{"event":"n","data":{"a":1},"event":"m"}`,
		`{"event":"a\"b","data":1}`,
		`{"event":"<b>","data":1}`,
		`{"event":"","data":1}`,
		`{"event":"n", "data":1}`,
		`{"event":"n","data":1 }`,
		`{"event":"n","data":}`,
		`{"event":"n"}`,
		`{"data":1,"event":"n"}`,
	} {
		if e, d, ok := canonicalBody([]byte(b)); ok {
			t.Errorf("canonicalBody(%s) takes it: %q %s", b, e, d)
		}
	}
}
