package suite

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/xpeditis/notify/pkg/postgres"
	"github.com/xpeditis/notify/scripts/chaos/cluster"
)

// Row is the outcome of one phase.
type Row struct {
	Phase        string
	Detail       string
	Acked        int
	PubFailed    int
	Rows         int // notification rows of the phase's events
	Missing      int // acked events without their row
	Duplicated   int // rows beyond one per (event, user)
	WebhookOK    int // 2xx deliveries
	WebhookDup   int // events delivered with a 2xx more than once
	WebhookMiss  int // acked events never delivered
	SocketMissed int // (tab, acked event of its user) never received
	SocketDup    int // notifications received again by the same tab
	NotRecovered int // reconnects with socket.recovered === false
	FlowBack     string
	MaxLatency   string
	Healthy      string
	Restarts     int // exits the harness did not cause
	Errors       int // ERROR log lines of the services
	Err          string
	Notes        []string // a few examples of webhook duplicates
}

// Report is the run's outcome.
type Report struct {
	Rows          []Row
	BadSignatures int
	BrowserErrors []string
	ClientExited  bool // client.mjs ended before the run did: its tabs saw nothing after
	Behind        int
	// Crashes lists the exits the harness did not cause, with the last
	// line each process wrote, grouped.
	Crashes []string
}

// Failed says why the run fails, if it does: anything acked missing (row
// or webhook), a row duplicated, a socket message missed, or a forged
// signature.
func (r *Report) Failed() []string {
	var out []string
	for _, row := range r.Rows {
		if row.Missing > 0 || row.Duplicated > 0 || row.SocketMissed > 0 || row.WebhookMiss > 0 {
			out = append(out, fmt.Sprintf("%s: %d missing, %d duplicated rows, %d webhooks missing, %d socket messages missed",
				row.Phase, row.Missing, row.Duplicated, row.WebhookMiss, row.SocketMissed))
		}
	}
	if r.ClientExited {
		out = append(out, "the socket.io-client process exited during the run")
	}
	if r.BadSignatures > 0 {
		out = append(out, fmt.Sprintf("%d webhook requests with a bad signature", r.BadSignatures))
	}
	return out
}

// Print writes the table (Markdown).
func (r *Report) Print(w io.Writer) {
	fmt.Fprintln(w, "| fault | acked | publish failed | rows | missing | duplicated | webhooks 2xx | webhook dup | webhook missing | socket missed | socket dup | recovered=false | flow back | max latency socket / webhook | healthy after | restarts | ERROR logs |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, x := range r.Rows {
		name := x.Phase
		if x.Detail != "" {
			name += " (" + x.Detail + ")"
		}
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %s | %s | %s | %d | %d |\n",
			name, x.Acked, x.PubFailed, x.Rows, x.Missing, x.Duplicated, x.WebhookOK, x.WebhookDup, x.WebhookMiss,
			x.SocketMissed, x.SocketDup, x.NotRecovered, x.FlowBack, x.MaxLatency, x.Healthy, x.Restarts, x.Errors)
	}
	for _, x := range r.Rows {
		if x.Err != "" {
			fmt.Fprintf(w, "\n- %s: %s", x.Phase, x.Err)
		}
		for _, n := range x.Notes {
			fmt.Fprintf(w, "\n- %s: %s", x.Phase, n)
		}
	}
	for _, c := range r.Crashes {
		fmt.Fprintf(w, "\n- restart: %s", c)
	}
	if r.Behind > 0 {
		fmt.Fprintf(w, "\n- the producer skipped %d events, being more than a second behind its rate (at most %d acks outstanding)", r.Behind, maxPending)
	}
	fmt.Fprintln(w)
}

// settle waits until every acked event has its row, webhook and socket
// messages, or timeout passes.
func settle(ctx context.Context, c *cluster.Cluster, prod *producer, recv *receiver, b *browsers, timeout time.Duration) error {
	db, err := postgres.Open(ctx, c.Postgres.URL, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	events := prod.snapshot()
	// Socket messages come live or with a recovery, within seconds of
	// their row; those still missing once the rows and webhooks are all
	// there and nothing has arrived for socketQuiet will not come.
	const socketQuiet = 15 * time.Second
	lastSocket, lastChange := -1, time.Now()
	// Every 2 s: each check reads every row of the run.
	return waitEvery(ctx, timeout, 2*time.Second, "every acked event delivered", func() error {
		rows, err := eventRows(ctx, db, prod.run)
		if err != nil {
			return err
		}
		var noRow, noHook, noSocket int
		for _, ev := range events {
			if !ev.acked {
				continue
			}
			if rows[ev.id] == 0 {
				noRow++
			}
			if !recv.has(ev.id) {
				noHook++
			}
			for _, t := range b.tabsOf(ev.user) {
				if _, ok := b.arrival(t, ev.id); !ok {
					noSocket++
				}
			}
		}
		if noSocket != lastSocket {
			lastSocket, lastChange = noSocket, time.Now()
		}
		if noRow+noHook > 0 || (noSocket > 0 && time.Since(lastChange) < socketQuiet) {
			return fmt.Errorf("%d rows, %d webhooks, %d socket messages outstanding", noRow, noHook, noSocket)
		}
		return nil
	})
}

type querier interface {
	SelectContext(ctx context.Context, dest any, query string, args ...any) error
}

// eventRows counts the notification rows of the run per event id.
func eventRows(ctx context.Context, db querier, run string) (map[string]int, error) {
	var rs []struct {
		EventID string `db:"event_id"`
		N       int    `db:"n"`
	}
	if err := db.SelectContext(ctx, &rs, `SELECT event_id, count(*) AS n FROM notifications WHERE event_id LIKE $1 GROUP BY event_id`, "chaos-"+run+"-%"); err != nil {
		return nil, fmt.Errorf("count notification rows: %w", err)
	}
	out := make(map[string]int, len(rs))
	for _, r := range rs {
		out[r.EventID] = r.N
	}
	return out, nil
}

func analyze(ctx context.Context, c *cluster.Cluster, prod *producer, recv *receiver, b *browsers, startup phase, phases []*phase, run string) (*Report, error) {
	db, err := postgres.Open(ctx, c.Postgres.URL, 2)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := eventRows(ctx, db, run)
	if err != nil {
		return nil, err
	}
	deliveries, bad := recv.snapshot()
	tabs := b.snapshot()
	procs := c.Procs()

	rep := &Report{BadSignatures: bad, Behind: prod.behindBy(), ClientExited: b.exited()}
	rep.Rows = append(rep.Rows, Row{Phase: startup.name, Healthy: fmtDur(startup.healthy), FlowBack: "-", MaxLatency: "-",
		Restarts: exitsBetween(procs, startup.start, startup.end), Errors: errorsBetween(procs, startup.start, startup.end)})
	for i, row := range tabulate(prod.snapshot(), rows, deliveries, tabs, phases) {
		row.Restarts = exitsBetween(procs, phases[i].start, phases[i].end)
		row.Errors = errorsBetween(procs, phases[i].start, phases[i].end)
		rep.Rows = append(rep.Rows, row)
	}
	rep.Crashes = crashes(procs, append([]*phase{&startup}, phases...))
	for _, t := range tabs {
		for _, e := range t.errors {
			if len(rep.BrowserErrors) < 10 {
				rep.BrowserErrors = append(rep.BrowserErrors, e)
			}
		}
	}
	return rep, nil
}

// tabulate attributes each event to the phase it was published in and
// counts, per phase, what became of the acked ones: rows (by event id),
// webhook deliveries (by event id) and socket messages (by tab of the
// event's user).
func tabulate(events []sent, rows map[string]int, deliveries map[string]delivery, tabs map[string]tab, phases []*phase) []Row {
	tabsOf := map[string][]string{}
	for name, t := range tabs {
		tabsOf[t.user] = append(tabsOf[t.user], name)
	}
	out := make([]Row, 0, len(phases))
	for i, ph := range phases {
		row := Row{Phase: ph.name, Detail: ph.detail, Err: ph.err, FlowBack: "-", Healthy: "-"}
		if !ph.faultAt.IsZero() {
			row.Healthy = fmtDur(ph.healthy)
		}
		var maxSock, maxHook time.Duration
		incomplete := 0
		var firstBack time.Time
		for _, ev := range events {
			if ev.phase != i {
				continue
			}
			n := rows[ev.id]
			row.Rows += n
			if !ev.acked {
				row.PubFailed++
				continue
			}
			row.Acked++
			if n == 0 {
				row.Missing++
			}
			if n > 1 {
				row.Duplicated += n - 1
			}
			d, hooked := deliveries[ev.id]
			if hooked {
				row.WebhookOK += d.ok
				if d.ok > 1 {
					row.WebhookDup++
					if len(row.Notes) < 3 {
						row.Notes = append(row.Notes, fmt.Sprintf("%s delivered %d times, X-Webhook-Attempt %s", ev.id, d.ok, strings.Join(d.attempts, ", ")))
					}
				}
			} else {
				row.WebhookMiss++
			}
			if hooked {
				maxHook = max(maxHook, d.first.Sub(ev.at))
			}
			done, complete := d.first, hooked && n > 0
			var sockDone time.Time
			for _, name := range tabsOf[ev.user] {
				row.SocketDup += max(0, tabs[name].counts[ev.id]-1)
				at, ok := tabs[name].received[ev.id]
				if !ok {
					row.SocketMissed++
					complete = false
					continue
				}
				if at.After(sockDone) {
					sockDone = at
				}
			}
			if !sockDone.IsZero() {
				maxSock = max(maxSock, sockDone.Sub(ev.at))
			}
			if sockDone.After(done) {
				done = sockDone
			}
			if !complete {
				incomplete++
				continue
			}
			if !ph.faultAt.IsZero() && !ev.at.Before(ph.faultAt) && (firstBack.IsZero() || done.Before(firstBack)) {
				firstBack = done
			}
		}
		for _, t := range tabs {
			for j, conn := range t.connects {
				if j > 0 && !conn.recovered && !conn.at.Before(ph.start) && conn.at.Before(ph.end) {
					row.NotRecovered++
				}
			}
		}
		row.MaxLatency = fmtDur(maxSock) + " / " + fmtDur(maxHook)
		if incomplete > 0 {
			row.MaxLatency += fmt.Sprintf(" (%d incomplete)", incomplete)
		}
		if !ph.faultAt.IsZero() {
			row.FlowBack = "never"
			if !firstBack.IsZero() {
				row.FlowBack = fmtDur(firstBack.Sub(ph.faultAt))
			}
		}
		out = append(out, row)
	}
	return out
}

// exitsBetween counts the exits the harness did not cause.
func exitsBetween(procs []*cluster.Proc, from, to time.Time) int {
	n := 0
	for _, p := range procs {
		for _, e := range p.Stats().Exits {
			if !e.Expected && !e.At.Before(from) && e.At.Before(to) {
				n++
			}
		}
	}
	return n
}

// crashes groups the unexpected exits by phase, process and last line.
func crashes(procs []*cluster.Proc, phases []*phase) []string {
	var out []string
	for _, ph := range phases {
		count := map[string]int{}
		var keys []string
		for _, p := range procs {
			for _, e := range p.Stats().Exits {
				if e.Expected || e.At.Before(ph.start) || !e.At.Before(ph.end) {
					continue
				}
				k := fmt.Sprintf("%s: %s (%s)", p.Name(), e.LastLine, e.Status)
				if count[k] == 0 {
					keys = append(keys, k)
				}
				count[k]++
			}
		}
		for _, k := range keys {
			out = append(out, fmt.Sprintf("%s: %d× %s", ph.name, count[k], k))
		}
	}
	return out
}

func errorsBetween(procs []*cluster.Proc, from, to time.Time) int {
	n := 0
	for _, p := range procs {
		for _, at := range p.Stats().Errors {
			if !at.Before(from) && at.Before(to) {
				n++
			}
		}
	}
	return n
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	default:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
}

func runCmd(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}
