package engineio

import (
	"bytes"
	"errors"
	"testing"
)

func TestDecode(t *testing.T) {
	cases := []struct {
		name   string
		in     string
		binary bool
		want   Packet
		err    bool
	}{
		{name: "open", in: `0{"sid":"x"}`, want: Packet{Type: Open, Data: []byte(`{"sid":"x"}`)}},
		{name: "close", in: "1", want: Packet{Type: Close, Data: []byte{}}},
		{name: "ping", in: "2", want: Packet{Type: Ping, Data: []byte{}}},
		{name: "probe", in: "2probe", want: Packet{Type: Ping, Data: []byte("probe")}},
		{name: "pong", in: "3", want: Packet{Type: Pong, Data: []byte{}}},
		{name: "message", in: "4hello", want: Packet{Type: Message, Data: []byte("hello")}},
		{name: "socket.io connect", in: `40{"token":"t"}`, want: Packet{Type: Message, Data: []byte(`0{"token":"t"}`)}},
		{name: "upgrade", in: "5", want: Packet{Type: Upgrade, Data: []byte{}}},
		{name: "noop", in: "6", want: Packet{Type: Noop, Data: []byte{}}},
		{name: "base64 binary", in: "bAQIDBA==", want: Packet{Type: Message, Data: []byte{1, 2, 3, 4}, Binary: true}},
		{name: "binary frame", in: "\x01\x02", binary: true, want: Packet{Type: Message, Data: []byte{1, 2}, Binary: true}},
		{name: "empty", in: "", err: true},
		{name: "type 7", in: "7", err: true},
		{name: "letter", in: "x", err: true},
		{name: "bad base64", in: "b!!", err: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode([]byte(tc.in), tc.binary)
			if tc.err {
				if err == nil {
					t.Fatalf("Decode(%q) = %+v, want an error", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode(%q): %v", tc.in, err)
			}
			if got.Type != tc.want.Type || got.Binary != tc.want.Binary || !bytes.Equal(got.Data, tc.want.Data) {
				t.Fatalf("Decode(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestText(t *testing.T) {
	cases := []struct {
		p    Packet
		want string
	}{
		{Packet{Type: Ping}, "2"},
		{Packet{Type: Pong, Data: []byte("probe")}, "3probe"},
		{Packet{Type: Message, Data: []byte(`42["a"]`)}, `442["a"]`},
		{Packet{Type: Message, Data: []byte{1, 2, 3, 4}, Binary: true}, "bAQIDBA=="},
		{Packet{Type: Noop}, "6"},
	}
	for _, tc := range cases {
		if got := string(Text(tc.p)); got != tc.want {
			t.Errorf("Text(%+v) = %q, want %q", tc.p, got, tc.want)
		}
	}
}

func TestPayload(t *testing.T) {
	body := EncodePayload([][]byte{[]byte("2"), []byte(`42["a",1]`), []byte("bAQI=")})
	if string(body) != "2\x1e42[\"a\",1]\x1ebAQI=" {
		t.Fatalf("EncodePayload = %q", body)
	}
	got, err := DecodePayload(body, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Type != Ping || got[1].Type != Message || string(got[1].Data) != `2["a",1]` || !got[2].Binary {
		t.Fatalf("DecodePayload = %+v", got)
	}
	if _, err := DecodePayload([]byte("2\x1e2\x1e2"), 2); err == nil {
		t.Fatal("a payload over the packet limit was accepted")
	}
	if _, err := DecodePayload([]byte("2\x1e\x1e2"), 10); !errors.Is(err, ErrEmptyPacket) {
		t.Fatalf("an empty packet in a payload: %v", err)
	}
	if _, err := DecodePayload(nil, 10); err == nil {
		t.Fatal("an empty payload was accepted")
	}
}

// FuzzDecodePayload checks that any body either fails or decodes into
// packets that encode back to the same body.
func FuzzDecodePayload(f *testing.F) {
	for _, s := range []string{"2", "40{\"token\":\"x\"}", "2probe\x1e3", "bAQID", "6\x1e6", "", "\x1e", "9", "b"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		packets, err := DecodePayload(body, 1<<20)
		if err != nil {
			return
		}
		var parts [][]byte
		for _, p := range packets {
			if p.Type > Noop {
				t.Fatalf("type %d out of range", p.Type)
			}
			parts = append(parts, Text(p))
		}
		again, err := DecodePayload(EncodePayload(parts), 1<<20)
		if err != nil || len(again) != len(packets) {
			t.Fatalf("re-encoded payload does not decode: %v", err)
		}
		for i := range again {
			if again[i].Type != packets[i].Type || !bytes.Equal(again[i].Data, packets[i].Data) || again[i].Binary != packets[i].Binary {
				t.Fatalf("packet %d changed: %+v then %+v", i, packets[i], again[i])
			}
		}
	})
}

// FuzzDecode checks that any WebSocket message either fails or decodes into
// a packet that encodes back to the same message.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{"2", "3probe", "4hello", "5", "6", "bAQID", "", "9", "b"} {
		f.Add([]byte(s), false)
	}
	f.Add([]byte{1, 2, 3}, true)
	f.Fuzz(func(t *testing.T, data []byte, binary bool) {
		p, err := Decode(data, binary)
		if err != nil {
			return
		}
		if p.Type > Noop {
			t.Fatalf("type %d out of range", p.Type)
		}
		if binary {
			if p.Type != Message || !p.Binary || !bytes.Equal(p.Data, data) {
				t.Fatalf("binary message %q decoded as %+v", data, p)
			}
			return
		}
		again, err := Decode(Text(p), false)
		if err != nil || again.Type != p.Type || again.Binary != p.Binary || !bytes.Equal(again.Data, p.Data) {
			t.Fatalf("%q decoded as %+v, re-encoded as %q, decoded again as %+v (%v)", data, p, Text(p), again, err)
		}
	})
}
