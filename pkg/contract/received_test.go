package contract

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// plainEvents are events in the form producers write; DecodeReceived takes
// its fast path on each.
var plainEvents = []string{
	`{"id":"6f1c","type":"BOOKING_CREATED","occurredAt":"2026-11-27T10:00:00Z","organizationId":"org-42","recipients":["user-7"],"priority":"HIGH","title":"t","message":"m","data":{"bookingId":"BK-1"}}`,
	`{"id":"1","type":"SYSTEM","organizationId":"o","recipients":["a.b","*",">","é"]}`,
	`{"id":"1","type":"SYSTEM","organizationId":"o","data":{"a":[1,{"b":null}],"c":true,"d":-0.5,"e":1e+21,"f":"Réservation"}}`,
	`{"id":"1","type":"NOPE","organizationId":"o"}`, // plain, and refused by Validate
	`{"id":"1","type":"SYSTEM"}`,
	`{ "id" : "2", "type": "PAYMENT_FAILED", "organizationId": "o", "occurredAt": "2026-11-27T10:00:00.123456789+02:00", "recipients": [], "data": {} }`,
}

// otherEvents take the protojson path: escapes, proto field names, unknown
// fields, nulls, numbers protojson writes differently, repeated keys, and
// invalid events.
var otherEvents = []string{
	`{"id":"1","type":"SYSTEM","organizationId":"o","title":"a \"quoted\" title"}`,
	`{"id":"1","type":"SYSTEM","organization_id":"o"}`,
	`{"id":"1","type":"SYSTEM","organizationId":"o","futureField":1}`,
	`{"id":"1","type":"SYSTEM","organizationId":"o","title":null}`,
	`{"id":"1","type":"SYSTEM","organizationId":"o","data":{"n":1.0}}`,
	`{"id":"1","type":"SYSTEM","organizationId":"o","data":{"n":12345678901234567890}}`,
	`{"id":"1","type":"SYSTEM","organizationId":"o","data":{"a":1,"a":2}}`,
	`{"id":"1","id":"2","type":"SYSTEM","organizationId":"o"}`,
	`{"id":"1","type":"SYSTEM","organizationId":"o","occurredAt":"2026-11-27t10:00:00z"}`,
	`{"id":"1","type":"SYSTEM","organizationId":"o","data":[1]}`,
	`{`, `null`, `[]`, ``,
}

func TestDecodeReceivedTakesTheFastPathOnPlainEvents(t *testing.T) {
	for _, in := range plainEvents {
		if _, ok := decodePlain([]byte(in)); !ok {
			t.Errorf("decodePlain refused a plain event: %s", in)
		}
		checkSameAsProtojson(t, []byte(in))
	}
	for _, in := range otherEvents {
		if _, ok := decodePlain([]byte(in)); ok {
			t.Errorf("decodePlain accepted an event for protojson: %s", in)
		}
		checkSameAsProtojson(t, []byte(in))
	}
}

// FuzzDecodeReceived: for every input, DecodeReceived gives exactly what
// protojson gives (Decode, then the data encoded by protojson): the same
// error, or the same value in every field and data that is the same JSON,
// number for number.
func FuzzDecodeReceived(f *testing.F) {
	for _, in := range append(plainEvents, otherEvents...) {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkSameAsProtojson(t, data) })
}

func checkSameAsProtojson(t *testing.T, data []byte) {
	t.Helper()
	want, wantErr := Decode(data)
	got, err := DecodeReceived(data)
	if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
		t.Fatalf("%q: DecodeReceived error %v, protojson's %v", data, err, wantErr)
	}
	if err != nil {
		return
	}
	wantData := []byte("{}")
	if want.GetData() != nil {
		if wantData, err = protojson.Marshal(want.GetData()); err != nil {
			t.Fatalf("%q: protojson cannot encode the data it decoded: %v", data, err)
		}
	}
	want.Data = nil
	if got.Event.GetData() != nil || !proto.Equal(got.Event, want) {
		t.Fatalf("%q: DecodeReceived gave\n%v\nprotojson\n%v", data, got.Event, want)
	}
	if g, w := jsonValue(t, got.Data), jsonValue(t, wantData); !reflect.DeepEqual(g, w) {
		t.Fatalf("%q: data %s, protojson's %s", data, got.Data, wantData)
	}
}

// jsonValue decodes JSON keeping each number's text.
func jsonValue(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("data %q is not JSON: %v", b, err)
	}
	return v
}

// BenchmarkDecode compares the consumers' decoding of a typical event:
// protojson with its data encoded back to JSON, and DecodeReceived.
func BenchmarkDecode(b *testing.B) {
	in := []byte(plainEvents[0])
	b.Run("protojson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ev, err := Decode(in)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := protojson.Marshal(ev.GetData()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("received", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeReceived(in); err != nil {
				b.Fatal(err)
			}
		}
	})
}
