package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/buildinfo"
	"github.com/xpeditis/notify/pkg/cmd/cli"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/testkit"
)

// runCmd runs one notifyctl command line in this process.
func runCmd(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = cli.Run(context.Background(), "notifyctl", usage, commands, args, cli.Stdio{In: strings.NewReader(""), Out: &out, Err: &errOut})
	return code, out.String(), errOut.String()
}

// Every command line a user may ask help of.
var helpCommands = [][]string{
	{}, {"token"}, {"publish"}, {"verify"}, {"listen"},
}

// Values that must never appear in help, set where a command could read them.
var secretValues = map[string]string{
	"JWT_SECRET":     "jwt-secret-value-that-must-stay-hidden-0123456789",
	"WEBHOOK_SECRET": "whsec_webhooksecretvaluethatmuststayhidden",
	"DATABASE_URL":   "postgres://app:db-password-hidden@db.internal:5432/notify",
	"NATS_URL":       "nats://producer:nats-password-hidden@nats.internal:4222",
}

func TestEveryCommandPrintsItsHelpWithExamplesOnStdoutAndExitsZero(t *testing.T) {
	for name, v := range secretValues {
		t.Setenv(name, v)
	}
	for _, cmd := range helpCommands {
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string{}, cmd...), h)
			code, out, errOut := runCmd(t, args...)
			if code != 0 {
				t.Errorf("notifyctl %s: exit %d, want 0 (stderr %q)", strings.Join(args, " "), code, errOut)
			}
			if errOut != "" {
				t.Errorf("notifyctl %s wrote to stderr: %q", strings.Join(args, " "), errOut)
			}
			if !strings.HasPrefix(out, "usage: notifyctl") {
				t.Errorf("notifyctl %s: help does not start with the usage line:\n%s", strings.Join(args, " "), out)
			}
			if len(cmd) > 0 && !strings.Contains(out, "examples:\n  notifyctl ") && !strings.Contains(out, "examples:\n  TOKEN=") && !strings.Contains(out, "examples:\n  WEBHOOK_SECRET=") {
				t.Errorf("notifyctl %s: help has no examples:\n%s", strings.Join(args, " "), out)
			}
			for name, v := range secretValues {
				if strings.Contains(out, v) || strings.Contains(out, strings.Split(strings.TrimPrefix(v, "postgres://app:"), "@")[0]) {
					t.Errorf("notifyctl %s: help shows the value of $%s:\n%s", strings.Join(args, " "), name, out)
				}
			}
			if strings.Contains(out, auth.DevSecret) {
				t.Errorf("notifyctl %s: help shows the development secret", strings.Join(args, " "))
			}
		}
	}
}

func TestHelpNamesTheVariablesSecretsComeFrom(t *testing.T) {
	t.Setenv("JWT_SECRET", secretValues["JWT_SECRET"])
	for _, cmd := range [][]string{{"token"}} {
		_, out, _ := runCmd(t, append(cmd, "-h")...)
		if !strings.Contains(out, "$JWT_SECRET") {
			t.Errorf("notifyctl %s -h does not name $JWT_SECRET:\n%s", strings.Join(cmd, " "), out)
		}
	}
	_, out, _ := runCmd(t, "verify", "-h")
	if !strings.Contains(out, "$WEBHOOK_SECRET") {
		t.Errorf("notifyctl verify -h does not name $WEBHOOK_SECRET:\n%s", out)
	}
}

// A flag that reads an environment variable has the same name in every
// command: -nats for $NATS_URL, -secret for $JWT_SECRET.
func TestTheSameThingHasTheSameFlagInEveryCommand(t *testing.T) {
	want := map[string]string{"$NATS_URL": "nats", "$JWT_SECRET": "secret", "$WEBHOOK_SECRET": "webhook-secret", "$JWT_ISSUER": "issuer", "$JWT_AUDIENCE": "audience"}
	flagLine := regexp.MustCompile(`(?m)^  -(\S+)[^\n]*\n((?:    [^\n]*\n)*)`)
	seen := map[string]bool{}
	for _, cmd := range helpCommands[1:] {
		_, out, _ := runCmd(t, append(cmd, "-h")...)
		for _, m := range flagLine.FindAllStringSubmatch(out, -1) {
			name, help := m[1], m[2]
			for env, flagName := range want {
				if strings.Contains(help, "(default: "+env) {
					seen[env] = true
					if name != flagName {
						t.Errorf("notifyctl %s: -%s reads %s; every command calls that -%s", strings.Join(cmd, " "), name, env, flagName)
					}
				}
			}
		}
	}
	for env := range want {
		if !seen[env] {
			t.Errorf("no command reads %s: the table of this test is stale", env)
		}
	}
	// The user and the organization of a token and of an event.
	for _, cmd := range []string{"token", "publish"} {
		_, out, _ := runCmd(t, cmd, "-h")
		for _, f := range []string{"\n  -user ", "\n  -org "} {
			if !strings.Contains(out, f) {
				t.Errorf("notifyctl %s has no %s flag", cmd, strings.TrimSpace(f))
			}
		}
	}
}

func TestVersionPrintsTheBuildOnStdout(t *testing.T) {
	want := "notifyctl " + buildinfo.Get().String() + "\n"
	for _, arg := range []string{"version", "--version", "-version"} {
		code, out, errOut := runCmd(t, arg)
		if code != 0 || out != want || errOut != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 0 and %q", arg, code, out, errOut, want)
		}
	}
}

func TestAnUnknownCommandOrFlagIsAUsageError(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"token", "-nope"}, {"bench"}, {"publish", "stray"}} {
		code, out, errOut := runCmd(t, args...)
		if code != 2 || out != "" || errOut == "" {
			t.Errorf("notifyctl %s: exit %d, stdout %q, stderr %q; want exit 2 and the problem on stderr", strings.Join(args, " "), code, out, errOut)
		}
	}
}

func TestPublishPrintsTheIDOfTheEventTheStreamStored(t *testing.T) {
	n := testkit.StartNATS(t)
	code, out, errOut := runCmd(t, "publish", "-nats", n.URL, "-type", "BOOKING_CREATED", "-org", "org-42", "-user", "user-7,user-8", "-data", `{"bookingId":"BK-1"}`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	id := strings.TrimSpace(out)
	ctx := context.Background()
	stream, err := n.JS.Stream(ctx, natsx.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, "events.BOOKING_CREATED")
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get(nats.MsgIdHdr); id == "" || got != id {
		t.Fatalf("stdout %q; the stream holds event %q", out, got)
	}
	if !regexp.MustCompile(`"recipients":\s*\["user-7",\s*"user-8"\]`).Match(msg.Data) {
		t.Errorf("stored event %s lacks its two recipients", msg.Data)
	}
	if !strings.Contains(errOut, "stream EVENTS") {
		t.Errorf("stderr %q does not say which stream stored it", errOut)
	}
}

// A NATS server the services never used (no EVENTS stream, or no
// JetStream at all) must not swallow the event silently.
func TestPublishFailsLoudlyWhenNoEventsStreamAcknowledges(t *testing.T) {
	for _, jetStream := range []bool{false, true} {
		opts := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true, JetStream: jetStream, StoreDir: t.TempDir()}
		srv, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		srv.Start()
		t.Cleanup(srv.Shutdown)
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats-server not ready")
		}
		url := strings.Replace(srv.ClientURL(), "nats://", "nats://producer:pw-not-shown@", 1)
		code, out, errOut := runCmd(t, "publish", "-nats", url, "-timeout", "2s")
		if code != 1 || out != "" {
			t.Fatalf("JetStream %v: exit %d, stdout %q; want exit 1 and no event id", jetStream, code, out)
		}
		if !strings.Contains(errOut, "NATS_URL=nats://redacted@"+strings.TrimPrefix(srv.ClientURL(), "nats://")) || !strings.Contains(errOut, "no EVENTS stream") {
			t.Errorf("JetStream %v: stderr %q does not name NATS_URL, its address and the missing EVENTS stream", jetStream, errOut)
		}
		if strings.Contains(errOut, "pw-not-shown") {
			t.Errorf("stderr shows the password: %q", errOut)
		}
	}
}

func TestPublishToAnAddressNobodyListensOnNamesNATS_URL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	t.Setenv("NATS_URL", "nats://"+addr)
	code, _, errOut := runCmd(t, "publish")
	if code != 1 || !strings.Contains(errOut, "cannot connect to NATS_URL=nats://"+addr) || !strings.Contains(errOut, "NATS_LISTEN") {
		t.Fatalf("exit %d, stderr %q; want exit 1 naming NATS_URL, the address and notifyd's NATS_LISTEN", code, errOut)
	}
}

// -wait returns only once the consumer has acknowledged the event (for
// notification-api: its notifications are stored), so that a script can
// read them next.
func TestPublishWaitReturnsOnceTheConsumerAckedTheEvent(t *testing.T) {
	n := testkit.StartNATS(t)
	ctx := context.Background()
	cons, err := n.JS.CreateOrUpdateConsumer(ctx, natsx.StreamEvents, jetstream.ConsumerConfig{Durable: "ingest-under-test", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		code      int
		out, serr string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errOut := runCmd(t, "publish", "-nats", n.URL, "-wait", "-consumer", "ingest-under-test")
		done <- result{code, out, errOut}
	}()
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	msg, ok := <-batch.Messages()
	if !ok {
		t.Fatalf("no event delivered: %v", batch.Error())
	}
	select {
	case r := <-done:
		t.Fatalf("publish -wait returned before the consumer acked: %+v", r)
	default:
	}
	if err := msg.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.code != 0 || strings.TrimSpace(r.out) != msg.Headers().Get(nats.MsgIdHdr) {
		t.Fatalf("publish -wait: %+v; acked event %s", r, msg.Headers().Get(nats.MsgIdHdr))
	}

	code, _, errOut := runCmd(t, "publish", "-nats", n.URL, "-wait", "-consumer", "no-such-consumer")
	if code != 1 || !strings.Contains(errOut, "no-such-consumer") {
		t.Fatalf("waiting for a missing consumer: exit %d, stderr %q", code, errOut)
	}
}

// With OTEL_EXPORTER_OTLP_ENDPOINT set, publish starts the event's trace:
// it prints the trace id, the stored event carries a traceparent of that
// trace, and the spans reach the collector before the command exits.
func TestPublishStartsTheEventsTraceWhenTracingIsOn(t *testing.T) {
	exports := make(chan struct{}, 8)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/traces" && r.Method == http.MethodPost {
			exports <- struct{}{}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	n := testkit.StartNATS(t)
	code, _, errOut := runCmd(t, "publish", "-nats", n.URL, "-type", "BOOKING_CREATED", "-org", "org-42", "-user", "user-7")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	m := regexp.MustCompile(`trace ([0-9a-f]{32})\n`).FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("stderr %q does not give the trace id", errOut)
	}
	stream, err := n.JS.Stream(context.Background(), natsx.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetLastMsgForSubject(context.Background(), "events.BOOKING_CREATED")
	if err != nil {
		t.Fatal(err)
	}
	if tp := msg.Header.Get("traceparent"); !strings.HasPrefix(tp, "00-"+m[1]+"-") {
		t.Errorf("the event's traceparent %q is not of trace %s", tp, m[1])
	}
	select {
	case <-exports:
	default:
		t.Error("publish exited before exporting its spans")
	}
}
