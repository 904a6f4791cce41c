package main

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/natsx"
)

func TestPerOpAndRate(t *testing.T) {
	if got := perOp(1500*time.Millisecond, 100_000, true); got != "15.0" {
		t.Errorf("1.5 s over 100,000 ops = %s µs, want 15.0", got)
	}
	if got := perOp(time.Second, 0, true); got != "n/a" {
		t.Errorf("no op: %s", got)
	}
	if got := perOp(time.Second, 10, false); got != "n/a" {
		t.Errorf("unknown: %s", got)
	}
	if got := rate(500, 2*time.Second); got != "250" {
		t.Errorf("rate = %s", got)
	}
	if got := share(time.Second, 4*time.Second); got != "25%" {
		t.Errorf("share = %s", got)
	}
}

func TestSumAddsCostsPerOperation(t *testing.T) {
	a := measure{ops: 100, cpu: []time.Duration{100 * time.Millisecond, 10 * time.Millisecond}, known: []bool{true, true}, sys: 50 * time.Millisecond}    // 1000 + 100 µs/op
	b := measure{ops: 1000, cpu: []time.Duration{500 * time.Millisecond, 30 * time.Millisecond}, known: []bool{true, false}, sys: 100 * time.Millisecond} // 500 + 30 µs/op
	s := sum("a + b", 1, a, b)
	if s.cpu[0] != 1500*time.Microsecond || s.cpu[1] != 130*time.Microsecond || s.sys != 600*time.Microsecond {
		t.Fatalf("sum per op: %v sys %v", s.cpu, s.sys)
	}
	if !s.known[0] || s.known[1] || !s.derived {
		t.Fatalf("known %v derived %v: a sum is known where every part is", s.known, s.derived)
	}
	var out bytes.Buffer
	tb := &table{title: "t", parties: []string{"server", "client"}, rows: []measure{a, s}}
	tb.print(&out)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[3], "1500.0") || !strings.Contains(lines[3], "n/a") || !strings.Contains(lines[2], "1000.0") {
		t.Fatalf("table:\n%s", out.String())
	}
}

func TestParseLoads(t *testing.T) {
	got, err := parseLoads("db,nodb@2, nodb@1")
	want := []httpLoad{{"db", 0}, {"nodb", 2}, {"nodb", 1}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v %v, want %v", got, err, want)
	}
	if got[1].String() != "nodb@2" || got[0].String() != "db" {
		t.Fatalf("names %s %s", got[0], got[1])
	}
	for _, bad := range []string{"", "list", "db@0", "db@x", "nodb@"} {
		if _, err := parseLoads(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The benchmark's streams are the services' but for names and subjects.
func TestFloorStreamsAreTheServicesUnderThePrefix(t *testing.T) {
	s := config.ReadCommon(config.FromMap(nil), false, false).Streams
	events, notify, err := floorStreams(s)
	if err != nil {
		t.Fatal(err)
	}
	if events.Name != "FLOORS_EVENTS" || notify.Name != "FLOORS_NOTIFY" ||
		!reflect.DeepEqual(events.Subjects, []string{"floors.events.>"}) || !reflect.DeepEqual(notify.Subjects, []string{"floors.notify.user.*"}) {
		t.Fatalf("names or subjects: %s %v, %s %v", events.Name, events.Subjects, notify.Name, notify.Subjects)
	}
	if rp := notify.RePublish; rp.Source != "floors.notify.user.*" || rp.Destination != "floors.live.user.{{wildcard(1)}}" {
		t.Fatalf("republish %+v", rp)
	}
	for _, orig := range natsx.StreamConfigs(s) {
		got := map[string]jetstream.StreamConfig{natsx.StreamEvents: events, natsx.StreamNotify: notify}[orig.Name]
		if got.Name == "" {
			continue
		}
		if orig.RePublish != nil && (orig.RePublish.Source != "notify.user.*" || got.RePublish == orig.RePublish) {
			t.Fatalf("the services' RePublish was changed or shared: %+v", orig.RePublish)
		}
		got.Name, got.Subjects, got.Description, got.RePublish = orig.Name, orig.Subjects, orig.Description, orig.RePublish
		if !reflect.DeepEqual(got, orig) {
			t.Errorf("%s differs from the services':\n%+v\n%+v", orig.Name, got, orig)
		}
	}
	if events.Storage != jetstream.FileStorage || notify.Storage != jetstream.FileStorage || events.Replicas != 1 || notify.Duplicates == 0 {
		t.Fatalf("file storage, R1, a duplicates window: %+v %+v", events, notify)
	}
}

func TestSamplesAreRealMessages(t *testing.T) {
	ev, note, err := samples()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ev.Subject, "events.") || ev.Header.Get("Nats-Msg-Id") == "" || len(ev.Data) < 100 {
		t.Fatalf("event %s %v %d bytes", ev.Subject, ev.Header, len(ev.Data))
	}
	var m struct {
		Event string `json:"event"`
		Data  struct {
			ID, EventID string
		} `json:"data"`
	}
	if err := json.Unmarshal(note, &m); err != nil || m.Event != "notification" || m.Data.ID == "" || m.Data.EventID == "" {
		t.Fatalf("notification %s: %v", note, err)
	}
	body, page, err := pageBody()
	if err != nil || len(body) < 2000 || len(body) > 2400 || len(page.Data) < 5 {
		t.Fatalf("page of %d bytes, %d rows: %v", len(body), len(page.Data), err)
	}
}

func TestCounterClosesOnceAtItsTarget(t *testing.T) {
	c := newCounter(5)
	c.add(3)
	select {
	case <-c.done:
		t.Fatal("done at 3 of 5")
	default:
	}
	c.add(2)
	c.add(4) // beyond: no second close
	select {
	case <-c.done:
	default:
		t.Fatal("not done at 5 of 5")
	}
}
