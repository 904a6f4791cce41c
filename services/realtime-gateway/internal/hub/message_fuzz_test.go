package hub

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/xpeditis/notify/pkg/contract"
)

// FuzzFrames checks the frames NewMessage splices by hand against
// encoding/json, for any body:
//   - a body NewMessage takes, encoding/json takes as a contract.UserMessage
//     with an event, and the reverse;
//   - the Socket.IO frame is "42" and a JSON array that encoding/json reads
//     as [event, data, "<offset>"]; re-encoded (json.Marshal compacts and
//     escapes HTML) it is byte for byte json.Marshal of that array, and
//     when the body is itself what json.Marshal makes of the message, so is
//     the frame before re-encoding;
//   - the /ws frame is byte for byte json.Marshal of
//     {"type":"message","event":…,"data":…,"offset":seq};
//   - each is, whole, the payload of its WebSocket text frame.
func FuzzFrames(f *testing.F) {
	f.Add(notificationBody(f), uint64(42))
	for _, body := range []string{
		`{"event":"notification"}`,
		`{"event":"n","data":null}`,
		`{"event":"n","data": { "a" : [1, 2] ,"b":"x"} }`,
		`{"event":"<n&>","data":{"m":"<b>&</b>"}}`,
		"{\"event\":\"n\",\"data\":\"a\u2028b\u2029c\"}",
		`{"event":"a\"b\\","data":"\u2028"}`,
		`{"event":"événement","data":{"ville":"Zürich 上海"}}`,
		`{"data":{"a":"b"},"event":"n"}`,
		`{"event":"<<<<<<<<<<","data":{}}`,
		`{"event":"n","data":{"long":"first value"},"data":2}`,
		`{"EVENT":"n","Data":[true]}`,
		`{"event":"n","data":1e400}`,
		`{"event":"","data":1}`,
		`{"event":`,
		`[]`,
	} {
		f.Add([]byte(body), uint64(1))
	}
	f.Add([]byte(`{"event":"n","data":"x"}`), uint64(1<<64-1))
	f.Fuzz(func(t *testing.T, body []byte, seq uint64) {
		var um contract.UserMessage
		refErr := json.Unmarshal(body, &um)
		m, err := NewMessage(seq, 0, body)
		wantOK := refErr == nil && um.Event != "" && len(body) <= MaxMessageBytes
		if (err == nil) != wantOK {
			t.Fatalf("NewMessage error %v, encoding/json error %v and event %q", err, refErr, um.Event)
		}
		if err != nil {
			return
		}
		if len(um.Data) == 0 {
			um.Data = json.RawMessage("null")
		}
		offset := strconv.FormatUint(seq, 10)
		want, err := json.Marshal([]any{um.Event, um.Data, offset})
		if err != nil {
			t.Fatalf("encoding/json cannot encode the message: %v", err)
		}
		sio, ok := bytes.CutPrefix(m.SocketIO, []byte("42"))
		if !ok {
			t.Fatalf("Socket.IO frame %q is not an event in a message packet", m.SocketIO)
		}
		got, err := json.Marshal(json.RawMessage(sio))
		if err != nil {
			t.Fatalf("Socket.IO frame %q is not JSON: %v", m.SocketIO, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("Socket.IO frame %s\nre-encoded %s\nencoding/json %s", m.SocketIO, got, want)
		}
		canonical, _ := json.Marshal(contract.UserMessage{Event: um.Event, Data: um.Data})
		if bytes.Equal(body, canonical) && !bytes.Equal(sio, want) {
			t.Fatalf("Socket.IO frame of a canonical body %s\nencoding/json %s", sio, want)
		}
		wantPlain, err := json.Marshal(struct {
			Type   string          `json:"type"`
			Event  string          `json:"event"`
			Data   json.RawMessage `json:"data"`
			Offset uint64          `json:"offset"`
		}{"message", um.Event, um.Data, seq})
		if err != nil {
			t.Fatal(err)
		}
		if plain := m.Plain(); !bytes.Equal(plain, wantPlain) {
			t.Fatalf("/ws frame %s\nencoding/json %s", plain, wantPlain)
		}
		checkWebSocketFrame(t, m.SocketIOWS, m.SocketIO)
		checkWebSocketFrame(t, m.PlainWS(), m.Plain())
		if m.Event != um.Event || !bytes.Equal(m.Data, um.Data) || m.Seq != seq {
			t.Fatalf("message %q %s %d, want %q %s %d", m.Event, m.Data, m.Seq, um.Event, um.Data, seq)
		}
	})
}
