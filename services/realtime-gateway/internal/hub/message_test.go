package hub

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/xpeditis/notify/pkg/contract"
)

// notificationBody is a NOTIFY message as notification-api publishes it.
func notificationBody(tb testing.TB) []byte {
	tb.Helper()
	data, err := json.Marshal(contract.Notification{ID: "0193a0b4-5c1e-7d2f-9a8b-1c2d3e4f5a6b", Type: "BOOKING_CONFIRMED", Title: "Booking confirmed", Message: "Your booking WCM-2026-000123 from Le Havre to Shanghai is confirmed.", Data: json.RawMessage(`{"bookingId":"b-123","eta":"2026-12-24"}`)})
	if err != nil {
		tb.Fatal(err)
	}
	body, err := json.Marshal(contract.UserMessage{Event: contract.UserEventNotification, Data: data})
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

func BenchmarkNewMessage(b *testing.B) {
	body := notificationBody(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := NewMessage(42, 41, body); err != nil {
			b.Fatal(err)
		}
	}
}

// referenceFrames is how the frames were encoded before they were spliced:
// the bytes clients receive must not change.
func referenceFrames(t *testing.T, seq uint64, body []byte) (sio, plain []byte) {
	t.Helper()
	var um contract.UserMessage
	if err := json.Unmarshal(body, &um); err != nil {
		t.Fatal(err)
	}
	if len(um.Data) == 0 {
		um.Data = json.RawMessage("null")
	}
	event, _ := json.Marshal(um.Event)
	offset, _ := json.Marshal(strconv.FormatUint(seq, 10))
	sio = append([]byte(`42[`), event...)
	sio = append(append(append(sio, ','), um.Data...), ',')
	sio = append(append(sio, offset...), ']')
	plain, err := json.Marshal(plainFrame{Type: "message", Event: um.Event, Data: um.Data, Offset: seq})
	if err != nil {
		t.Fatal(err)
	}
	return sio, plain
}

func TestNewMessageFrames(t *testing.T) {
	for name, body := range map[string]string{
		"notification":             "",
		"no data":                  `{"event":"notification"}`,
		"null data":                `{"event":"notification","data":null}`,
		"number":                   `{"event":"count","data":12}`,
		"spaces inside strings":    `{"event":"n","data":{"title":"a b\tc"}}`,
		"spaces between tokens":    `{"event":"n","data": { "a" : [1, 2] ,"b":"x"} }`,
		"newlines":                 "{\"event\":\"n\",\"data\":{\n\"a\":1\r\n}}",
		"html":                     `{"event":"n","data":{"m":"<b>&</b>"}}`,
		"html in the event":        `{"event":"<n&>","data":1}`,
		"line separators":          "{\"event\":\"n\",\"data\":\"a\u2028b\u2029c\"}",
		"escaped quotes":           `{"event":"n","data":{"q":"say \"hi\" \\","after":[ 1]}}`,
		"escaped line separator":   `{"event":"n","data":"\u2028"}`,
		"unicode":                  `{"event":"événement","data":{"ville":"Zürich 上海"}}`,
		"quote in the event name":  `{"event":"a\"b","data":{}}`,
		"control escape in string": `{"event":"n","data":"tab\there"}`,
		"data before the event":    `{"data":{"a":"b"},"event":"n"}`,
		"name longer once escaped": `{"event":"<<<<<<<<<<","data":{}}`,
		"unknown fields":           `{"x":[1,2,3],"event":"n","data":[true],"y":{}}`,
		"data given twice":         `{"event":"n","data":{"long":"first value"},"data":2}`,
	} {
		b := []byte(body)
		if body == "" {
			b = notificationBody(t)
		}
		for _, seq := range []uint64{1, 42, 1<<64 - 1} {
			m, err := NewMessage(seq, seq-1, b)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			sio, plain := referenceFrames(t, seq, b)
			if string(m.SocketIO) != string(sio) {
				t.Errorf("%s: Socket.IO frame\n got %s\nwant %s", name, m.SocketIO, sio)
			}
			if string(m.Plain()) != string(plain) {
				t.Errorf("%s: /ws frame\n got %s\nwant %s", name, m.Plain(), plain)
			}
			var um contract.UserMessage
			_ = json.Unmarshal(b, &um)
			if um.Data == nil {
				um.Data = json.RawMessage("null")
			}
			if m.Event != um.Event || string(m.Data) != string(um.Data) || m.Seq != seq || m.Last != seq-1 {
				t.Errorf("%s: message %q %s %d %d", name, m.Event, m.Data, m.Seq, m.Last)
			}
		}
	}
}

func TestNewMessageRefuses(t *testing.T) {
	for name, body := range map[string]string{
		"not JSON":    `{"event":`,
		"no event":    `{"data":1}`,
		"empty event": `{"event":"","data":1}`,
		"over limit":  `{"event":"n","data":"` + strings.Repeat("x", MaxMessageBytes) + `"}`,
	} {
		if _, err := NewMessage(1, 0, []byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// BenchmarkNewMessagePlain also encodes the /ws frame, as when the user has
// a plain WebSocket connection.
func BenchmarkNewMessagePlain(b *testing.B) {
	body := notificationBody(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		m, err := NewMessage(42, 41, body)
		if err != nil {
			b.Fatal(err)
		}
		_ = m.Plain()
	}
}
