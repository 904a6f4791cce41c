package suite

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// at is a point of a made-up run, in seconds from its start.
func at(s float64) time.Time {
	return time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC).Add(time.Duration(s * float64(time.Second)))
}

func TestEachLossAndDuplicateIsCountedInThePhaseOfItsEvent(t *testing.T) {
	phases := []*phase{
		{name: "baseline", start: at(0), end: at(10)},
		{name: "fault", start: at(10), faultAt: at(12), end: at(30), healthy: 5 * time.Second},
	}
	events := []sent{
		{id: "a", user: "u1", phase: 0, at: at(1), acked: true},  // whole
		{id: "b", user: "u1", phase: 1, at: at(11), acked: true}, // no row
		{id: "c", user: "u2", phase: 1, at: at(13), acked: true}, // two rows, tab u2-1 misses it
		{id: "d", user: "u2", phase: 1, at: at(14), acked: true}, // webhook twice, tab u2-0 twice
		{id: "e", user: "u1", phase: 1, at: at(15)},              // never acked
	}
	rows := map[string]int{"a": 1, "c": 2, "d": 1}
	deliveries := map[string]delivery{
		"a": {ok: 1, first: at(1.1)}, "b": {ok: 1, first: at(11.1)}, "c": {ok: 1, first: at(13.1)}, "d": {ok: 2, first: at(20)},
	}
	tabs := map[string]tab{
		"u1-0": {user: "u1", received: map[string]time.Time{"a": at(1.2), "b": at(11.2)}, counts: map[string]int{"a": 1, "b": 1}},
		"u2-0": {user: "u2", received: map[string]time.Time{"c": at(13.3), "d": at(14.2)}, counts: map[string]int{"c": 1, "d": 2},
			connects: []connectObs{{at: at(0.5), recovered: false}, {at: at(12.5), recovered: false}}},
		"u2-1": {user: "u2", received: map[string]time.Time{"d": at(14.3)}, counts: map[string]int{"d": 1},
			connects: []connectObs{{at: at(0.5)}, {at: at(12.6), recovered: true}}},
	}
	got := tabulate(events, rows, deliveries, tabs, phases)
	if len(got) != 2 {
		t.Fatalf("%d rows, want 2", len(got))
	}
	base, fault := got[0], got[1]
	if base.Acked != 1 || base.Rows != 1 || base.Missing+base.Duplicated+base.SocketMissed+base.SocketDup+base.WebhookMiss+base.WebhookDup != 0 {
		t.Errorf("baseline: %+v, want one whole event", base)
	}
	if base.MaxLatency != "200 ms / 100 ms" || base.FlowBack != "-" {
		t.Errorf("baseline latency %q, flow back %q; want 200 ms / 100 ms and -", base.MaxLatency, base.FlowBack)
	}
	want := Row{Phase: "fault", Acked: 3, PubFailed: 1, Rows: 3, Missing: 1, Duplicated: 1, WebhookOK: 4, WebhookDup: 1,
		SocketMissed: 1, SocketDup: 1, NotRecovered: 1, Healthy: "5.0 s"}
	if len(fault.Notes) != 1 || !strings.Contains(fault.Notes[0], "d delivered 2 times") {
		t.Errorf("notes %q should name the webhook duplicate", fault.Notes)
	}
	fault.FlowBack, fault.MaxLatency, fault.Notes = "", "", nil
	if !reflect.DeepEqual(fault, want) {
		t.Errorf("fault:\n got %+v\nwant %+v", fault, want)
	}
}

func TestFlowBackIsTheFirstEventPublishedAfterTheFaultToComplete(t *testing.T) {
	phases := []*phase{{name: "fault", start: at(0), faultAt: at(2), end: at(20)}}
	events := []sent{
		{id: "before", user: "u", at: at(1), acked: true}, // published before the fault: not the flow coming back
		{id: "stuck", user: "u", at: at(2.5), acked: true},
		{id: "first", user: "u", at: at(3), acked: true},
	}
	rows := map[string]int{"before": 1, "stuck": 1, "first": 1}
	deliveries := map[string]delivery{"before": {ok: 1, first: at(1.1)}, "stuck": {ok: 1, first: at(32.5)}, "first": {ok: 1, first: at(6)}}
	tabs := map[string]tab{"t": {user: "u", received: map[string]time.Time{"before": at(1.1), "stuck": at(2.6), "first": at(7)}}}
	row := tabulate(events, rows, deliveries, tabs, phases)[0]
	if row.FlowBack != "5.0 s" {
		t.Errorf("flow back %q, want 5.0 s (fault at 2 s, first event after it complete at 7 s)", row.FlowBack)
	}
	if row.MaxLatency != "4.0 s / 30.0 s" {
		t.Errorf("max latency %q, want 4.0 s / 30.0 s (the socket message of first, the stuck webhook)", row.MaxLatency)
	}
}

func TestAFaultAfterWhichNothingCompletesReportsNever(t *testing.T) {
	phases := []*phase{{name: "fault", start: at(0), faultAt: at(1), end: at(10)}}
	events := []sent{{id: "x", user: "u", at: at(2), acked: true}}
	row := tabulate(events, map[string]int{}, map[string]delivery{}, map[string]tab{"t": {user: "u"}}, phases)[0]
	if row.FlowBack != "never" || row.Missing != 1 || row.WebhookMiss != 1 || row.SocketMissed != 1 {
		t.Errorf("got %+v, want never, and the event missing everywhere", row)
	}
	if !strings.Contains(row.MaxLatency, "1 incomplete") {
		t.Errorf("max latency %q should say 1 incomplete", row.MaxLatency)
	}
}

func TestTheRunFailsOnLossDuplicateRowMissedSocketOrForgedSignatureOnly(t *testing.T) {
	cases := []struct {
		name string
		rep  Report
		fail bool
	}{
		{"clean", Report{Rows: []Row{{Phase: "p", Acked: 10, Rows: 10, WebhookDup: 3, SocketDup: 2, NotRecovered: 4}}}, false},
		{"missing row", Report{Rows: []Row{{Phase: "p", Missing: 1}}}, true},
		{"duplicated row", Report{Rows: []Row{{Phase: "p", Duplicated: 1}}}, true},
		{"webhook never delivered", Report{Rows: []Row{{Phase: "p", WebhookMiss: 1}}}, true},
		{"socket message missed", Report{Rows: []Row{{Phase: "p", SocketMissed: 1}}}, true},
		{"forged signature", Report{BadSignatures: 1}, true},
	}
	for _, c := range cases {
		if got := len(c.rep.Failed()) > 0; got != c.fail {
			t.Errorf("%s: failed = %v, want %v (%v)", c.name, got, c.fail, c.rep.Failed())
		}
	}
}

func TestFaultListsAreParsedAndUnknownOnesRefused(t *testing.T) {
	for _, spec := range []string{FullFaults, ShortFaults} {
		if _, err := ParseFaults(spec); err != nil {
			t.Errorf("%s: %v", spec, err)
		}
	}
	got, err := ParseFaults(" sigterm:webhook-dispatcher , partition")
	if err != nil || len(got) != 2 || got[0] != (Fault{Kind: SigTerm, Service: "webhook-dispatcher"}) || got[1].Kind != Partition {
		t.Errorf("got %v, %v", got, err)
	}
	for _, bad := range []string{"sigkill", "sigkill:notifyd", "reboot"} {
		if _, err := ParseFaults(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
