package gwbench

import (
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/contract"
)

func TestParseEvent(t *testing.T) {
	for _, tc := range []struct {
		frame, name, arg string
		ok               bool
	}{
		{`42["notification",{"id":"n1"}]`, "notification", `{"id":"n1"}`, true},
		{`42["notification",{"id":"n1"},"offset-7"]`, "notification", `{"id":"n1"}`, true}, // recovery offset
		{`4212["notification",{"id":"n1"}]`, "notification", `{"id":"n1"}`, true},          // ack id
		{`42["notification:read-all"]`, "notification:read-all", ``, true},
		{`42/admin,["x",1]`, "", "", false}, // another namespace
		{`40{"sid":"s"}`, "", "", false},
		{`2`, "", "", false},
		{`42[`, "", "", false},
		{`42[1,2]`, "", "", false},
		{`42[]`, "", "", false},
		{``, "", "", false},
	} {
		name, arg, ok := parseEvent([]byte(tc.frame))
		if name != tc.name || string(arg) != tc.arg || ok != tc.ok {
			t.Errorf("parseEvent(%q) = %q, %q, %v; want %q, %q, %v", tc.frame, name, arg, ok, tc.name, tc.arg, tc.ok)
		}
	}
}

func TestParseConnectReply(t *testing.T) {
	for _, tc := range []struct {
		frame   string
		wantErr string // "" for success
		refused bool   // a ConnectError
	}{
		{`40{"sid":"abc"}`, "", false},
		{`40{"sid":"abc","pid":"p1"}`, "", false},
		{`44{"message":"invalid token","data":{"reason":"x"}}`, "connect_error: invalid token", true},
		{`44"plain"`, `connect_error: "plain"`, true},
		{`40{}`, `socket.io connect reply without sid: "40{}"`, false},
		{`42["x"]`, `expected a socket.io connect reply, got "42[\"x\"]"`, false},
		{`3`, `expected a socket.io connect reply, got "3"`, false},
	} {
		err := parseConnectReply([]byte(tc.frame))
		got := ""
		if err != nil {
			got = err.Error()
		}
		var ce *ConnectError
		if got != tc.wantErr || errors.As(err, &ce) != tc.refused {
			t.Errorf("parseConnectReply(%q) = %v; want %q (connect error %v)", tc.frame, err, tc.wantErr, tc.refused)
		}
	}
}

func TestParseOpen(t *testing.T) {
	p, err := parseOpen([]byte(`0{"sid":"s1","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`))
	if err != nil || p.SID != "s1" || p.PingInterval != 25000 || p.PingTimeout != 20000 || p.MaxPayload != 1000000 {
		t.Fatalf("parseOpen = %+v, %v", p, err)
	}
	for _, bad := range []string{``, `0`, `0{}`, `40{"sid":"x"}`, `0{"sid":`} {
		if _, err := parseOpen([]byte(bad)); err == nil {
			t.Errorf("parseOpen(%q) accepted", bad)
		}
	}
}

func TestConnectFrame(t *testing.T) {
	if got := string(connectFrame(`a"b`)); got != `40{"token":"a\"b"}` {
		t.Fatalf("connectFrame = %s", got)
	}
}

// Stamps come back in the shapes every hop may give numbers: integers from
// Go and Node, exponent form from a double that went through a Struct.
func TestStampOf(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Stamp
		ok   bool
	}{
		{`{"id":"n","data":{"benchRun":"r","benchPhase":"fanout","benchSeq":7,"benchSentAt":1764000000123456789}}`,
			Stamp{Run: "r", Phase: "fanout", Seq: 7, SentAt: 1764000000123456768}, true},
		{`{"data":{"benchRun":"r","benchPhase":"pipeline","benchSeq":7e0,"benchSentAt":1.764e18}}`,
			Stamp{Run: "r", Phase: "pipeline", Seq: 7, SentAt: 1764000000000000000}, true},
		{`{"data":{"bookingId":"BK-1"}}`, Stamp{}, false},
		{`{"data":{"benchRun":"r","benchSeq":-1}}`, Stamp{}, false},
		{`[1]`, Stamp{}, false},
	} {
		got, ok := stampOf([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("stampOf(%s) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestPercentilesNearestRank(t *testing.T) {
	samples := make([]uint32, 0, 100)
	for i := 100; i >= 1; i-- {
		samples = append(samples, uint32(i*1000)) // 1..100 ms, reversed
	}
	got := percentiles(samples, 0.5, 0.99, 1, 0)
	want := []float64{50, 99, 100, 1}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("percentiles = %v, want %v", got, want)
		}
	}
	if got := percentiles(nil, 0.5); got[0] != 0 {
		t.Fatalf("percentiles of nothing = %v", got)
	}
}

func TestWorkerCountsOnceAndIgnoresOtherRuns(t *testing.T) {
	w := newWorker(nil)
	w.run = "r1"
	ev := func(run string, seq int) []byte {
		return []byte(`{"data":{"benchRun":"` + run + `","benchPhase":"fanout","benchSeq":` + strconv.Itoa(seq) + `,"benchSentAt":1}}`)
	}
	w.onEvent("notification", ev("r1", 0))
	w.onEvent("notification", ev("r1", 130))
	w.onEvent("notification", ev("r1", 130)) // duplicate
	w.onEvent("notification", ev("r0", 1))   // another run
	w.onEvent("notification:read", ev("r1", 2))
	w.onEvent("notification", ev("r1", maxSeq+1))
	s := w.stats("fanout")
	if s.Received != 2 || s.Duplicates != 1 || s.Foreign != 2 {
		t.Fatalf("stats = %+v", s)
	}
	if n := len(w.samples("fanout")); n != 2 {
		t.Fatalf("%d samples, want 2", n)
	}
}

// The fan-out phase's message is what notification-api publishes: it
// decodes as the contract types and carries the stamp the clients read.
func TestFanoutMessageDecodesAsTheContract(t *testing.T) {
	p := &benchPublisher{org: "org-t"}
	st := Stamp{Run: "r", Phase: PhaseFanout, Seq: 42, SentAt: 1764000000123456789}
	msg, err := p.message("user.7", st)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != contract.NotifySubject("user.7") {
		t.Fatalf("subject %q", msg.Subject)
	}
	var um contract.UserMessage
	if err := json.Unmarshal(msg.Data, &um); err != nil || um.Event != contract.UserEventNotification {
		t.Fatalf("user message %s: %v", msg.Data, err)
	}
	var n contract.Notification
	if err := json.Unmarshal(um.Data, &n); err != nil {
		t.Fatal(err)
	}
	if n.ID == "" || n.EventID != n.ID || n.Type != "SYSTEM" || n.Priority != contract.PriorityMedium || n.Read || n.ReadAt != nil ||
		!n.CreatedAt.Equal(time.Unix(0, st.SentAt)) {
		t.Fatalf("notification %+v", n)
	}
	if got, ok := stampOf(um.Data); !ok || got.Run != st.Run || got.Phase != st.Phase || got.Seq != st.Seq {
		t.Fatalf("stamp %+v, %v", got, ok)
	}
}

// The pipeline phase's message is a valid domain event for one user.
func TestPipelineMessageIsAValidEvent(t *testing.T) {
	p := &benchPublisher{org: "org-t"}
	msg, err := p.message("u1", Stamp{Run: "r", Phase: PhasePipeline, Seq: 3, SentAt: 1764000000123456789})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := contract.Decode(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != contract.EventsSubject("SYSTEM") || msg.Header.Get("Nats-Msg-Id") != ev.GetId() ||
		ev.GetOrganizationId() != "org-t" || len(ev.GetRecipients()) != 1 || ev.GetRecipients()[0] != "u1" {
		t.Fatalf("event %v on %s", ev, msg.Subject)
	}
	if r, _ := contract.RouteOf(ev.GetType()); r.InApp == "" || r.Webhook != "" {
		t.Fatalf("%s should make an in-app notification and no webhook", ev.GetType())
	}
}
