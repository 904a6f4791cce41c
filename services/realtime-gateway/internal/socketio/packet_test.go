package socketio

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestDecode(t *testing.T) {
	cases := []struct {
		in   string
		want Packet
		err  bool
	}{
		{in: "0", want: Packet{Type: Connect, Namespace: "/", ID: NoID}},
		{in: `0{"token":"abc"}`, want: Packet{Type: Connect, Namespace: "/", ID: NoID, Data: json.RawMessage(`{"token":"abc"}`)}},
		{in: `0{"token":"abc","pid":"p","offset":"12"}`, want: Packet{Type: Connect, Namespace: "/", ID: NoID, Data: json.RawMessage(`{"token":"abc","pid":"p","offset":"12"}`)}},
		{in: `0/admin,{"token":"abc"}`, want: Packet{Type: Connect, Namespace: "/admin", ID: NoID, Data: json.RawMessage(`{"token":"abc"}`)}},
		{in: "0/admin,", want: Packet{Type: Connect, Namespace: "/admin", ID: NoID}},
		{in: "0/admin", want: Packet{Type: Connect, Namespace: "/admin", ID: NoID}},
		{in: "1", want: Packet{Type: Disconnect, Namespace: "/", ID: NoID}},
		{in: "1/admin,", want: Packet{Type: Disconnect, Namespace: "/admin", ID: NoID}},
		{in: `2["hello",1]`, want: Packet{Type: Event, Namespace: "/", ID: NoID, Data: json.RawMessage(`["hello",1]`)}},
		{in: `212["reauth",{"token":"t"}]`, want: Packet{Type: Event, Namespace: "/", ID: 12, Data: json.RawMessage(`["reauth",{"token":"t"}]`)}},
		{in: `2/admin,7["x"]`, want: Packet{Type: Event, Namespace: "/admin", ID: 7, Data: json.RawMessage(`["x"]`)}},
		{in: `2[1]`, want: Packet{Type: Event, Namespace: "/", ID: NoID, Data: json.RawMessage(`[1]`)}},
		{in: `33[]`, want: Packet{Type: Ack, Namespace: "/", ID: 3, Data: json.RawMessage(`[]`)}},
		{in: `4{"message":"no"}`, want: Packet{Type: ConnectError, Namespace: "/", ID: NoID, Data: json.RawMessage(`{"message":"no"}`)}},
		{in: `4"no"`, want: Packet{Type: ConnectError, Namespace: "/", ID: NoID, Data: json.RawMessage(`"no"`)}},
		{in: `51-["file",{"_placeholder":true,"num":0}]`, want: Packet{Type: BinaryEvent, Namespace: "/", ID: NoID, Attachments: 1, Data: json.RawMessage(`["file",{"_placeholder":true,"num":0}]`)}},
		{in: `62-/a,9[{"_placeholder":true,"num":0}]`, want: Packet{Type: BinaryAck, Namespace: "/a", ID: 9, Attachments: 2, Data: json.RawMessage(`[{"_placeholder":true,"num":0}]`)}},
		{in: "", err: true},
		{in: "7", err: true},
		{in: "a", err: true},
		{in: "0[]", err: true},                    // CONNECT payload must be an object
		{in: `0"x"`, err: true},                   //
		{in: "1{}", err: true},                    // DISCONNECT has no payload
		{in: "2", err: true},                      // EVENT needs a payload
		{in: "2{}", err: true},                    //
		{in: "2[]", err: true},                    // and a name
		{in: `2["connect"]`, err: true},           // reserved
		{in: `2["disconnect",1]`, err: true},      //
		{in: `2[{}]`, err: true},                  // names are strings or numbers
		{in: `2["x"`, err: true},                  // not JSON
		{in: `3{}`, err: true},                    // ACK payload is an array
		{in: "4", err: true},                      // CONNECT_ERROR needs a payload
		{in: `5["x"]`, err: true},                 // binary without a count
		{in: `50-["x"]`, err: true},               // zero attachments
		{in: `5a-["x"]`, err: true},               //
		{in: `511-["x"]`, err: true},              // over the limit
		{in: `21234567890123456["x"]`, err: true}, // id too long
	}
	for _, tc := range cases {
		got, err := Decode([]byte(tc.in))
		if tc.err {
			if err == nil {
				t.Errorf("Decode(%q) = %+v, want an error", tc.in, got)
			} else if !errors.Is(err, ErrInvalid) {
				t.Errorf("Decode(%q): %v does not wrap ErrInvalid", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Decode(%q): %v", tc.in, err)
			continue
		}
		if got.Type != tc.want.Type || got.Namespace != tc.want.Namespace || got.ID != tc.want.ID ||
			got.Attachments != tc.want.Attachments || string(got.Data) != string(tc.want.Data) {
			t.Errorf("Decode(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestEncode(t *testing.T) {
	cases := []struct {
		p    Packet
		want string
	}{
		{Packet{Type: Connect, ID: NoID, Data: json.RawMessage(`{"sid":"a","pid":"b"}`)}, `0{"sid":"a","pid":"b"}`},
		{Packet{Type: ConnectError, Namespace: "/admin", ID: NoID, Data: ConnectErrorData("Invalid namespace", nil)}, `4/admin,{"message":"Invalid namespace"}`},
		{Packet{Type: ConnectError, ID: NoID, Data: ConnectErrorData("invalid token: token is expired", map[string]string{"code": "invalid_token"})}, `4{"message":"invalid token: token is expired","data":{"code":"invalid_token"}}`},
		{Packet{Type: Disconnect, ID: NoID}, `1`},
		{Packet{Type: Ack, ID: 12, Data: json.RawMessage(`[{"ok":true}]`)}, `312[{"ok":true}]`},
		{Packet{Type: BinaryEvent, Attachments: 1, ID: NoID, Data: json.RawMessage(`["a"]`)}, `51-["a"]`},
	}
	for _, tc := range cases {
		if got := string(Encode(tc.p)); got != tc.want {
			t.Errorf("Encode(%+v) = %s, want %s", tc.p, got, tc.want)
		}
	}
}

// FuzzDecode checks that whatever decodes encodes back to a packet that
// decodes the same.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{"0", `0{"token":"x"}`, `0/admin,{}`, `212["reauth",{"token":"t"}]`, `51-["f",{"_placeholder":true,"num":0}]`, "1", `33[]`, `4"x"`, `2[1]`, "2/a,1[\"b\"]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := Decode(in)
		if err != nil {
			return
		}
		again, err := Decode(Encode(p))
		if err != nil {
			t.Fatalf("Encode(Decode(%q)) = %q does not decode: %v", in, Encode(p), err)
		}
		if again.Type != p.Type || again.Namespace != p.Namespace || again.ID != p.ID || again.Attachments != p.Attachments || string(again.Data) != string(p.Data) {
			t.Fatalf("round trip changed %+v into %+v", p, again)
		}
	})
}
