package webhookdispatcher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/publisher"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/secrets"
)

// Two dispatchers (the binary, default lease) share a steady flow of
// events; PostgreSQL becomes unreachable for both, through a proxy, until
// both leases have been expired for longer than a lease, and comes back.
// Requests in flight at the cut are answered 200 and their results wait in
// each dispatcher's memory: when PostgreSQL is back, each dispatcher
// renews and writes them before the other may take its deliveries over, so
// no receiver gets a delivery twice, and every event's delivery is sent
// and ends SUCCEEDED. (A dispatcher that stalls for two leases before the
// cut, as on a loaded machine, has its deliveries taken over then, by the
// rule: those may be sent again, with the next attempt number.)
func TestAPostgreSQLOutageSharedByTwoDispatchersSendsNoDeliveryTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	nats := testkit.StartNATS(t)
	dbURL := testkit.Database(t)
	db := openDB(t, dbURL)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testkit.StartProxy(t, u.Host)
	u.Host = proxy.Addr()
	bin, keys := buildDispatcher(t), secrets.NewKeySpec("k1")
	env := dispatcherEnv(nats, u.String(), keys)
	a, b := &process{t: t, bin: bin, env: env}, &process{t: t, bin: bin, env: env}
	a.start()
	b.start()
	h := &harness{t: t, nats: nats, dbURL: dbURL, pub: publisher.New(nats.JS), base: a.base}

	rcv := newReceiver(t)
	rcv.setAnswer(func(int) (int, string) {
		time.Sleep(300 * time.Millisecond) // the receiver's own work: requests are in flight at the cut
		return http.StatusOK, "ok"
	})
	const hooks = 4
	var orgs []string
	for range hooks {
		org := testkit.UniqueID("org")
		orgs = append(orgs, org)
		h.createWebhook(token(t, org, "ADMIN"), rcv.srv.URL, "BOOKING_CREATED")
	}

	// A steady flow of events, before, during and after the outage.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var published []string
	var pubErr error
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ev := &contract.Event{Id: uuid.NewString(), Type: "BOOKING_CREATED", OrganizationId: orgs[i%hooks], OccurredAt: timestamppb.Now(), Data: &structpb.Struct{}}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := h.pub.Publish(ctx, ev)
			cancel()
			if err != nil {
				pubErr = err
				return
			}
			published = append(published, ev.Id)
		}
	})
	stopPublishing := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	t.Cleanup(stopPublishing)

	testkit.Eventually(t, 10*time.Second, "both dispatchers holding deliveries", func() bool {
		var holders int
		_ = db.Get(&holders, `SELECT count(DISTINCT holder) FROM webhook_deliveries WHERE holder IS NOT NULL`)
		return holders == 2
	})
	proxy.Stop()
	cut := time.Now()
	// Cut until both leases have been expired for longer than a lease
	// (WEBHOOK_LEASE's default is at most 6 s), by the database's clock.
	testkit.Eventually(t, 30*time.Second, "both leases expired for more than a lease", func() bool {
		var expired int
		_ = db.Get(&expired, `SELECT count(*) FROM webhook_leases WHERE expires_at < now() - interval '6 seconds'`)
		return expired == 2
	})
	// Takeovers before the cut are counted while no dispatcher can write:
	// on a loaded machine one may have stalled for two leases before it,
	// and the other then rightly took its deliveries over, results it had
	// not written yet included (see the check of the requests below).
	var lostBefore int
	if err := db.Get(&lostBefore, `SELECT coalesce(sum(losses), 0) FROM webhook_leases`); err != nil {
		t.Fatal(err)
	}
	received := rcv.count()
	proxy.Start()
	back := time.Now()
	t.Logf("PostgreSQL unreachable for %s", time.Since(cut).Round(time.Millisecond))
	testkit.Eventually(t, 30*time.Second, "deliveries to flow again", func() bool { return rcv.count() >= received+20 })
	stopPublishing()
	if pubErr != nil {
		t.Fatalf("publish: %v", pubErr)
	}

	var last string
	t.Cleanup(func() { t.Log(last) })
	testkit.Eventually(t, 60*time.Second, "a SUCCEEDED delivery for every event", func() bool {
		var n struct {
			All       int `db:"all"`
			Succeeded int `db:"succeeded"`
		}
		_ = db.Get(&n, `SELECT count(*) AS all, count(*) FILTER (WHERE status = 'SUCCEEDED') AS succeeded FROM webhook_deliveries`)
		var held []string
		_ = db.Select(&held, `SELECT d.holder::text || ' ' || d.status || ' ' || coalesce(l.expires_at::text, 'no lease') || ' ' || d.attempts::text
			FROM webhook_deliveries d LEFT JOIN webhook_leases l ON l.holder = d.holder WHERE d.status <> 'SUCCEEDED' LIMIT 5`)
		last = fmt.Sprintf("%d deliveries, %d SUCCEEDED, of %d events; sent twice so far: %d; not done: %s", n.All, n.Succeeded, len(published), twiceSoFar(rcv), strings.Join(held, "; "))
		return n.All == len(published) && n.Succeeded == n.All
	})

	sent := map[string][]string{} // delivery id -> X-Webhook-Attempt of each request
	for _, r := range rcv.requests() {
		id := r.Header.Get("X-Webhook-Id")
		sent[id] = append(sent[id], r.Header.Get("X-Webhook-Attempt"))
	}
	var ids []string
	if err := db.Select(&ids, `SELECT id::text FROM webhook_deliveries`); err != nil {
		t.Fatal(err)
	}
	var lost int
	if err := db.Get(&lost, `SELECT coalesce(sum(losses), 0) FROM webhook_leases`); err != nil {
		t.Fatal(err)
	}
	// A delivery taken over before the cut may be sent again: the taker
	// could not know the first attempt's answer, and its request carries
	// the next attempt number. After the outage nothing may be taken over,
	// so nothing may be sent twice.
	var twice, resent []string
	for _, id := range ids {
		switch n := len(sent[id]); {
		case n == 0:
			t.Errorf("delivery %s was never sent", id)
		case n > 1:
			var log string
			_ = db.Get(&log, `SELECT attempts::text FROM webhook_deliveries WHERE id = $1`, id)
			line := fmt.Sprintf("%s (attempts %s) log %s", id, strings.Join(sent[id], ", "), log)
			if lostBefore > 0 && lost == lostBefore && increasing(sent[id]) {
				resent = append(resent, line)
			} else {
				twice = append(twice, line)
			}
		}
	}
	if len(resent) > 0 {
		t.Logf("%d takeovers before the cut (a dispatcher stalled for two leases); %d deliveries sent again with the next attempt number:\n%s",
			lostBefore, len(resent), strings.Join(resent, "\n"))
	}
	if len(twice) > 0 {
		t.Fatalf("%d of %d deliveries sent more than once although the receiver answered 200 to the first request "+
			"(takeovers: %d before the cut, %d in all):\n%s\n"+
			"cut at %s, PostgreSQL back at %s; the lease records and warnings:\nA: %s\nB: %s",
			len(twice), len(ids), lostBefore, lost, strings.Join(twice, "\n"), cut.Format(time.StampMilli), back.Format(time.StampMilli),
			strings.Join(a.leaseRecords(), "\n   "), strings.Join(b.leaseRecords(), "\n   "))
	}
	if len(sent) != len(ids) {
		t.Fatalf("the receiver got %d distinct deliveries, the database has %d", len(sent), len(ids))
	}
	// One outage is told once (and its end once), not at every event that
	// met it: a condition that flips logs both lines each time.
	for name, p := range map[string]*process{"A": a, "B": b} {
		n := 0
		for _, rec := range p.log.lines() {
			if rec["msg"] == "waiting for postgres" {
				n++
			}
		}
		if n > 2 {
			t.Errorf("dispatcher %s logged %q %d times for one outage", name, "waiting for postgres", n)
		}
	}
}

// increasing reports whether the X-Webhook-Attempt numbers rise request
// after request.
func increasing(attempts []string) bool {
	for i := 1; i < len(attempts); i++ {
		prev, err1 := strconv.Atoi(attempts[i-1])
		cur, err2 := strconv.Atoi(attempts[i])
		if err1 != nil || err2 != nil || cur <= prev {
			return false
		}
	}
	return true
}

// twiceSoFar counts the deliveries the receiver got more than once.
func twiceSoFar(rcv *receiver) int {
	seen, twice := map[string]int{}, 0
	for _, r := range rcv.requests() {
		seen[r.Header.Get("X-Webhook-Id")]++
		if seen[r.Header.Get("X-Webhook-Id")] == 2 {
			twice++
		}
	}
	return twice
}

// leaseRecords are the log records of p's lease (renewals after a lapse,
// takeovers either way) and its other warnings, for a failure to show which
// dispatcher came back when and what it handed back.
func (p *process) leaseRecords() []string {
	var out []string
	for _, rec := range p.log.lines() {
		msg := fmt.Sprint(rec["msg"])
		outage := strings.Contains(msg, "waiting for postgres") // the outage itself, hundreds of times
		if outage || !strings.Contains(msg, "lease") && !strings.Contains(msg, "took over") && rec["level"] != "WARN" && rec["level"] != "ERROR" {
			continue
		}
		line, _ := json.Marshal(rec)
		out = append(out, string(line))
	}
	return out
}
