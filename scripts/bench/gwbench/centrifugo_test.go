package gwbench

import (
	"errors"
	"testing"
)

func TestParseCentrifugoConnect(t *testing.T) {
	for _, tc := range []struct {
		line    string
		done    bool
		pong    bool
		wantErr string // "" for success
		refused bool   // a ConnectError
	}{
		{`{}`, false, false, "", false}, // a ping before the reply
		{``, false, false, "", false},
		{`{"id":1,"connect":{"client":"c1","subs":{"#u1":{}},"ping":25,"pong":true}}`, true, true, "", false},
		{`{"id":1,"connect":{"client":"c1","subs":{"#u1":{}}}}`, true, false, "", false},
		{`{"id":1,"error":{"code":109,"message":"token expired"}}`, true, false, "connect_error: token expired", true},
		{`{"id":1,"connect":{"client":"c1"}}`, true, false, `centrifugo subscribed the client to no channel (is client.subscribe_to_user_personal_channel on?): "{\"id\":1,\"connect\":{\"client\":\"c1\"}}"`, false},
		{`{"id":1,"connect":{}}`, true, false, `centrifugo connect reply without a client id: "{\"id\":1,\"connect\":{}}"`, false},
		{`{"push":{"channel":"#u1"}}`, true, false, `expected the centrifugo connect reply, got "{\"push\":{\"channel\":\"#u1\"}}"`, false},
	} {
		s, done, err := parseCentrifugoConnect([]byte(tc.line))
		got := ""
		if err != nil {
			got = err.Error()
		}
		var ce *ConnectError
		if done != tc.done || s.pong != tc.pong || got != tc.wantErr || errors.As(err, &ce) != tc.refused {
			t.Errorf("parseCentrifugoConnect(%q) = %+v, %v, %v; want pong %v, done %v, %q (connect error %v)", tc.line, s, done, err, tc.pong, tc.done, tc.wantErr, tc.refused)
		}
	}
}

func TestParseCentrifugoPush(t *testing.T) {
	for _, tc := range []struct {
		line       string
		done, pong bool
		event, arg string // "" when no event is handed on
	}{
		{`{}`, false, true, "", ""},
		{`{"push":{"channel":"#u1","pub":{"data":{"event":"notification","data":{"id":"n1"}},"offset":3}}}`, false, false, "notification", `{"id":"n1"}`},
		{`{"push":{"channel":"#u1","pub":{"data":{"event":"notification:read-all"}}}}`, false, false, "notification:read-all", ``},
		{`{"push":{"channel":"#u1","pub":{"data":"not a user message"}}}`, false, false, "", ""},
		{`{"push":{"disconnect":{"code":3001,"reason":"shutdown"}}}`, true, false, "", ""},
		{`{"push":{"channel":"#u1","join":{}}}`, false, false, "", ""},
		{`{"id":7,"rpc":{}}`, false, false, "", ""},
		{`{"push":`, false, false, "", ""},
	} {
		var event, arg string
		done, pong := parseCentrifugoPush([]byte(tc.line), func(name string, a []byte) { event, arg = name, string(a) })
		if done != tc.done || pong != tc.pong || event != tc.event || arg != tc.arg {
			t.Errorf("parseCentrifugoPush(%q) = done %v, pong %v, event %q %q; want %v, %v, %q %q", tc.line, done, pong, event, arg, tc.done, tc.pong, tc.event, tc.arg)
		}
	}
}
