package notifyd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/xpeditis/notify/pkg/app"
	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/postgres"
	"github.com/xpeditis/notify/pkg/publisher"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/notification-api/notificationapi"
	"github.com/xpeditis/notify/services/realtime-gateway/e2e"
	"github.com/xpeditis/notify/services/realtime-gateway/realtimegateway"
	"github.com/xpeditis/notify/services/webhook-dispatcher/webhookdispatcher"
)

// permissionsFile is the documented, ready-to-use permission set.
const permissionsFile = "../../nats/permissions.conf"

// violationLog keeps the permission violations a NATS server reports.
type violationLog struct {
	mu    sync.Mutex
	lines []string
}

func (v *violationLog) record(format string, args ...any) {
	if s := fmt.Sprintf(format, args...); strings.Contains(s, "Violation") {
		v.mu.Lock()
		v.lines = append(v.lines, s)
		v.mu.Unlock()
	}
}
func (v *violationLog) Noticef(string, ...any)    {}
func (v *violationLog) Debugf(string, ...any)     {}
func (v *violationLog) Tracef(string, ...any)     {}
func (v *violationLog) Warnf(f string, a ...any)  { v.record(f, a...) }
func (v *violationLog) Errorf(f string, a ...any) { v.record(f, a...) }
func (v *violationLog) Fatalf(f string, a ...any) { v.record(f, a...) }
func (v *violationLog) all() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.lines...)
}

// lpNATS is a JetStream server configured from permissions.conf, with the
// password of each of its users, and an observer user with every right
// (the test's own eyes, not part of the documented set).
type lpNATS struct {
	url        string
	passwords  map[string]string
	violations *violationLog
	observer   jetstream.JetStream
}

func startLeastPrivilegeNATS(t *testing.T) *lpNATS {
	t.Helper()
	n := &lpNATS{passwords: map[string]string{}, violations: &violationLog{}}
	for user, env := range map[string]string{
		"producer": "NATS_PRODUCER_PASSWORD", notificationapi.Name: "NATS_NOTIFICATION_API_PASSWORD",
		webhookdispatcher.Name: "NATS_WEBHOOK_DISPATCHER_PASSWORD", realtimegateway.Name: "NATS_REALTIME_GATEWAY_PASSWORD",
	} {
		n.passwords[user] = testkit.UniqueID("pw")
		t.Setenv(env, n.passwords[user])
	}
	opts, err := server.ProcessConfigFile(permissionsFile)
	if err != nil {
		t.Fatalf("%s: %v", permissionsFile, err)
	}
	if len(opts.Users) != 4 {
		t.Fatalf("%s has %d users, want 4", permissionsFile, len(opts.Users))
	}
	observerPassword := testkit.UniqueID("pw")
	opts.Users = append(opts.Users, &server.User{Username: "test-observer", Password: observerPassword})
	opts.JetStream, opts.StoreDir = true, t.TempDir()
	opts.Host, opts.Port, opts.NoSigs = "127.0.0.1", -1, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetLogger(n.violations, false, false)
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	n.url = srv.ClientURL()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("permission violations the server reported:\n%s", strings.Join(n.violations.all(), "\n"))
		}
	})
	nc, err := nats.Connect(n.url, nats.UserInfo("test-observer", observerPassword))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if n.observer, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	return n
}

// connect signs in as user, with the error handler reporting on errs.
func (n *lpNATS) connect(t *testing.T, user string, errs chan<- error) *nats.Conn {
	t.Helper()
	opts, err := natsx.ClientOptions(config.NATSAuth{User: user, Password: n.passwords[user]})
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts, nats.PermissionErrOnSubscribe(true), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}))
	nc, err := nats.Connect(n.url, opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// subjectCount is how many messages stream holds on subject.
func (n *lpNATS) subjectCount(t *testing.T, stream, subject string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := n.observer.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// runAs runs one service, configured from the environment it would have in
// production (NATS_USER and NATS_PASSWORD its own), until the test ends,
// and returns its base URL.
func runAs(t *testing.T, n *lpNATS, name string, vars map[string]string, build func(*config.Env) app.Builder) string {
	t.Helper()
	m := map[string]string{"NATS_URL": n.url, "NATS_USER": name, "NATS_PASSWORD": n.passwords[name], "JWT_SECRET": testkit.JWTSecret, "LOG_LEVEL": "warn"}
	for k, v := range vars {
		m[k] = v
	}
	env := config.FromMap(m)
	common := config.ReadCommon(env, name != realtimegateway.Name, true)
	builder := build(env)
	if err := env.Err(); err != nil {
		t.Fatalf("%s configuration: %v", name, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done, ready := make(chan error, 1), make(chan string, 1)
	go func() {
		done <- app.Run(ctx, app.Options{
			Name: name, Common: common, Log: testkit.Logger(), NeedDB: common.DatabaseURL != "", Listener: ln,
			Services: []app.Builder{builder}, Ready: func(addr string) { ready <- addr }, ShutdownGrace: 5 * time.Second,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s stopped with: %v", name, err)
		}
	})
	select {
	case addr := <-ready:
		return "http://" + addr
	case err := <-done:
		t.Fatalf("%s did not start: %v (server refused: %v)", name, err, n.violations.all())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start within 30s (server refused: %v)", name, n.violations.all())
	}
	return ""
}

func request(t *testing.T, method, url, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// Every service runs with exactly the permissions of
// deploy/nats/permissions.conf, and the whole product works: an event a
// producer publishes becomes a PostgreSQL row, a live Socket.IO message and
// a webhook delivery; marking it read reaches the tab; a dropped tab is
// recovered from the gateway's session bucket with an ordered-consumer
// replay; malformed events are dead-lettered by both consumers. The server
// reports no permission violation throughout, and it does report the
// forbidden things tried afterwards.
func TestServicesWorkWithLeastPrivilegePermissions(t *testing.T) {
	n := startLeastPrivilegeNATS(t)
	dbURL := testkit.Database(t)
	apiBase := runAs(t, n, notificationapi.Name, map[string]string{"DATABASE_URL": dbURL, "INGEST_MAX_WAIT": "5ms"},
		func(e *config.Env) app.Builder { return notificationapi.New(notificationapi.ReadConfig(e)) })
	hookBase := runAs(t, n, webhookdispatcher.Name, map[string]string{
		"DATABASE_URL": dbURL, "WEBHOOK_SECRETS_KEYS": webhookdispatcher.NewSecretKeySpec("test1"),
		"WEBHOOK_ALLOW_TARGETS": "127.0.0.1/32", "WEBHOOK_POLL_INTERVAL": "20ms",
	}, func(e *config.Env) app.Builder { return webhookdispatcher.New(webhookdispatcher.ReadConfig(e)) })
	gwBase := runAs(t, n, realtimegateway.Name, nil,
		func(e *config.Env) app.Builder { return realtimegateway.New(realtimegateway.ReadConfig(e)) })

	org, alice := testkit.UniqueID("org"), testkit.UniqueID("alice")
	mint := func(user, role string) string {
		tok, err := auth.Mint(testkit.JWTSecret, auth.MintOptions{UserID: user, OrganizationID: org, Role: role, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	deliveries := make(chan []byte, 16)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case deliveries <- b:
		default:
		}
	}))
	t.Cleanup(receiver.Close)
	started := time.Now()
	code, body := request(t, http.MethodPost, hookBase+"/api/v1/webhooks", mint("admin", "ADMIN"),
		map[string]any{"url": receiver.URL + "/hook", "events": []string{"BOOKING_CREATED"}})
	if code != http.StatusCreated {
		t.Fatalf("create webhook: %d %s", code, body)
	}
	var hook struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &hook); err != nil || hook.ID == "" {
		t.Fatalf("created webhook %s: %v", body, err)
	}

	b := e2e.Start(t)
	b.Do(map[string]any{"cmd": "open", "tab": "t", "url": gwBase, "token": mint(alice, "USER"), "transports": []string{"websocket"}})
	b.Wait("connect", e2e.IsType("t", "connect"))

	producerErrs := make(chan error, 16)
	producer := n.connect(t, "producer", producerErrs)
	js, err := jetstream.New(producer)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(id string) {
		t.Helper()
		data, _ := structpb.NewStruct(map[string]any{"bookingId": id})
		ev := &contract.Event{Id: id, Type: "BOOKING_CREATED", OrganizationId: org, Recipients: []string{alice}, Data: data}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := publisher.New(js).Publish(ctx, ev); err != nil {
			t.Fatalf("producer publishes %s: %v", id, err)
		}
	}
	ev1 := testkit.UniqueID("ev")
	publish(ev1)

	o := b.Wait("the live notification", e2e.IsEvent("t", contract.UserEventNotification))
	var nt contract.Notification
	if err := json.Unmarshal(o.Args[0], &nt); err != nil || nt.EventID != ev1 {
		t.Fatalf("live message %s (%v), want event %s", o.Args[0], err, ev1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, dbURL, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows int
	if err := db.GetContext(ctx, &rows, "SELECT count(*) FROM notifications WHERE event_id = $1 AND user_id = $2", ev1, alice); err != nil || rows != 1 {
		t.Fatalf("notification rows for %s: %d (%v)", ev1, rows, err)
	}
	select {
	case body := <-deliveries:
		if !strings.Contains(string(body), ev1) {
			t.Fatalf("webhook delivery %s does not carry %s", body, ev1)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no webhook delivery within 15s")
	}

	// A recovery of missed events reads EVENTS again through an ordered
	// consumer of its own: the event is delivered a second time.
	if code, body := request(t, http.MethodPost, hookBase+"/api/v1/webhooks/"+hook.ID+"/recover", mint("admin", "ADMIN"),
		map[string]any{"since": started.UTC().Format(time.RFC3339Nano)}); code != http.StatusAccepted {
		t.Fatalf("recover: %d %s", code, body)
	}
	select {
	case body := <-deliveries:
		if !strings.Contains(string(body), ev1) {
			t.Fatalf("recovered delivery %s does not carry %s", body, ev1)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no recovered delivery within 15s")
	}

	if code, body := request(t, http.MethodPatch, apiBase+"/api/v1/notifications/"+nt.ID+"/read", mint(alice, "USER"), nil); code != http.StatusOK {
		t.Fatalf("mark read: %d %s", code, body)
	}
	b.Wait("notification:read", e2e.IsEvent("t", contract.UserEventRead))

	// A tab that loses its connection while a notification is stored gets
	// it on reconnect, recovered: the session record goes through the
	// GATEWAY_SESSIONS bucket and the missed message through a replay.
	b.Do(map[string]any{"cmd": "drop", "tab": "t"})
	b.Wait("disconnect", e2e.IsType("t", "disconnect"))
	ev2 := testkit.UniqueID("ev")
	publish(ev2)
	testkit.Eventually(t, 10*time.Second, "the second notification in NOTIFY", func() bool {
		return n.subjectCount(t, natsx.StreamNotify, contract.NotifySubject(alice)) == 3
	})
	b.Do(map[string]any{"cmd": "reconnect", "tab": "t"})
	testkit.Eventually(t, 10*time.Second, "reconnect", func() bool { return b.Count(e2e.IsType("t", "connect")) == 2 })
	if c := b.All(e2e.IsType("t", "connect"))[1]; !c.Recovered {
		t.Fatalf("reconnect: %+v, want recovered", c)
	}
	testkit.Eventually(t, 10*time.Second, "the missed notification", func() bool {
		return b.Count(e2e.IsEvent("t", contract.UserEventNotification)) == 2
	})

	// A malformed event is set aside by both consumers.
	bad := nats.NewMsg(contract.EventsSubject("BOOKING_CREATED"))
	bad.Data = []byte("not an event")
	bad.Header.Set(nats.MsgIdHdr, testkit.UniqueID("bad"))
	if _, err := js.PublishMsg(ctx, bad); err != nil {
		t.Fatalf("producer publishes a malformed event: %v", err)
	}
	for _, consumer := range []string{notificationapi.Name, webhookdispatcher.Name} {
		subject := natsx.DeadLetterSubject(consumer, bad.Subject)
		testkit.Eventually(t, 10*time.Second, subject, func() bool { return n.subjectCount(t, natsx.StreamDeadLetter, subject) == 1 })
	}

	if v := n.violations.all(); len(v) > 0 {
		t.Fatalf("the documented permissions are not enough; the server refused:\n%s", strings.Join(v, "\n"))
	}

	// What each role must not do.
	forbiddenSubscribe := func(nc *nats.Conn, subject string) {
		t.Helper()
		sub, err := nc.SubscribeSync(subject)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sub.NextMsg(5 * time.Second); !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("subscribing to %s: %v, want a permissions violation", subject, err)
		}
	}
	forbiddenPublish := func(nc *nats.Conn, errs chan error, stream, subject string) {
		t.Helper()
		if err := nc.Publish(subject, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), subject) {
				t.Errorf("publishing to %s: %v, want a permissions violation", subject, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("publishing to %s: no permissions violation", subject)
		}
		if got := n.subjectCount(t, stream, subject); got != 0 {
			t.Errorf("%s holds %d messages on %s", stream, got, subject)
		}
	}
	forbiddenPublish(producer, producerErrs, natsx.StreamNotify, contract.NotifySubject("x"))
	forbiddenSubscribe(producer, contract.LiveSubject("*"))
	forbiddenSubscribe(producer, "live.user.>")
	forbiddenSubscribe(producer, natsx.InboxPrefix(notificationapi.Name)+".>")
	gatewayErrs := make(chan error, 16)
	gateway := n.connect(t, realtimegateway.Name, gatewayErrs)
	forbiddenPublish(gateway, gatewayErrs, natsx.StreamEvents, contract.EventsSubject("BOOKING_CREATED_FORGED"))
	forbiddenPublish(gateway, gatewayErrs, natsx.StreamNotify, contract.NotifySubject("y"))
	// The dispatcher's recovery may pull from consumers of its own on
	// EVENTS, never from notification-api's.
	dispatcherErrs := make(chan error, 16)
	dispatcher := n.connect(t, webhookdispatcher.Name, dispatcherErrs)
	forbiddenPublish(dispatcher, dispatcherErrs, natsx.StreamEvents, "$JS.API.CONSUMER.MSG.NEXT.EVENTS."+notificationapi.Name)
	if v := n.violations.all(); len(v) < 7 {
		t.Fatalf("the server logged %d violations for 7 forbidden actions: %v", len(v), v)
	}
}

// notifyd's embedded NATS gives its producers the PRODUCER permissions of
// the documented file, so that a producer moves between the two unchanged.
func TestEmbeddedProducersHaveTheDocumentedPermissions(t *testing.T) {
	for _, env := range []string{"NATS_PRODUCER_PASSWORD", "NATS_NOTIFICATION_API_PASSWORD", "NATS_WEBHOOK_DISPATCHER_PASSWORD", "NATS_REALTIME_GATEWAY_PASSWORD"} {
		t.Setenv(env, "unused")
	}
	opts, err := server.ProcessConfigFile(permissionsFile)
	if err != nil {
		t.Fatal(err)
	}
	var documented *server.Permissions
	for _, u := range opts.Users {
		if u.Username == "producer" {
			documented = u.Permissions
		}
	}
	if documented == nil || documented.Publish == nil || documented.Subscribe == nil {
		t.Fatalf("%s: no publish and subscribe permissions for the producer user", permissionsFile)
	}
	embedded := natsx.ProducerPermissions()
	if !slices.Equal(documented.Publish.Allow, embedded.Publish.Allow) || !slices.Equal(documented.Subscribe.Allow, embedded.Subscribe.Allow) ||
		documented.Publish.Deny != nil || documented.Subscribe.Deny != nil || documented.Response != nil {
		t.Fatalf("producer permissions: documented %+v %+v, embedded %+v %+v", documented.Publish, documented.Subscribe, embedded.Publish, embedded.Subscribe)
	}
}
