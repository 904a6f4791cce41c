package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/xpeditis/notify/pkg/cmd/cli"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/postgres"
	"github.com/xpeditis/notify/scripts/bench/napibench"
	"github.com/xpeditis/notify/scripts/bench/proccpu"
)

// httpLoad is one load of `floors http`: a route of the child server, run
// with a GOMAXPROCS (0: the Go runtime's default, the machine's cores).
type httpLoad struct {
	route string // "db" or "nodb"
	procs int
}

func (l httpLoad) String() string {
	if l.procs == 0 {
		return l.route
	}
	return l.route + "@" + strconv.Itoa(l.procs)
}

// parseLoads reads -loads: routes, each optionally @GOMAXPROCS.
func parseLoads(spec string) ([]httpLoad, error) {
	var out []httpLoad
	for _, f := range strings.Split(spec, ",") {
		route, procs, hasProcs := strings.Cut(strings.TrimSpace(f), "@")
		l := httpLoad{route: route}
		if route != "db" && route != "nodb" {
			return nil, fmt.Errorf("%q: the route is db or nodb", f)
		}
		if hasProcs {
			n, err := strconv.Atoi(procs)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("%q: GOMAXPROCS after @ must be a positive number", f)
			}
			l.procs = n
		}
		out = append(out, l)
	}
	return out, nil
}

type httpOptions struct {
	db                 string
	rate               float64
	duration, warmup   time.Duration
	conns              int
	loads              []httpLoad
	progress, childErr io.Writer
}

// runHTTP is `floors http`.
func runHTTP(ctx context.Context, args []string, io cli.Stdio) error {
	c := cli.New("floors", "http", `Starts a minimal net/http server as a child process (so that its CPU time is
its own), then loads it at a constant arrival rate over keep-alive
connections (napibench.OpenLoop, as notifybench list) and reports its CPU
and PostgreSQL's (the client backends of the database) per request, and the
latency. Routes: db runs one prepared statement (SELECT $1::int, through
database/sql and lib/pq as the services) and writes a 2 KB JSON body; nodb
writes the body only. Each load runs in a child of its own, with the
GOMAXPROCS given after @ (none: the runtime's default, the machine's cores).`,
		`floors http -db "$DATABASE_URL" -rate 500 -duration 20s`,
		`floors http -db "$DATABASE_URL" -loads nodb@1,nodb@2 -duration 10s`)
	fs := c.FS
	o := httpOptions{progress: io.Err, childErr: io.Err}
	c.DBFlag(&o.db)
	fs.Float64Var(&o.rate, "rate", 500, "requests/s of each load (constant arrival rate)")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "measured time of each load")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured time at the same rate before each load (connections, prepared statements)")
	fs.IntVar(&o.conns, "conns", 20, "the child's PostgreSQL pool size (the services' is 20)")
	loads := fs.String("loads", "db,nodb@2,nodb@1,db@1", "loads to run in turn, comma-separated: db or nodb, each optionally @GOMAXPROCS of the child")
	if err := c.Parse(args, io); err != nil {
		return err
	}
	var err error
	if o.loads, err = parseLoads(*loads); err != nil {
		return cli.Usagef("http: -loads: %v", err)
	}
	if o.db == "" {
		return cli.Usagef("http: -db (or DATABASE_URL) is required")
	}
	if o.rate <= 0 || o.duration <= 0 || o.conns < 1 {
		return cli.Usagef("http: -rate, -duration and -conns must be positive")
	}
	// The meter's own connection: proccpu leaves its backend out.
	db, err := postgres.Open(ctx, o.db, 1)
	if err != nil {
		return err
	}
	defer db.Close()

	body, page, err := pageBody()
	if err != nil {
		return err
	}
	load := napibench.LoadAverage()
	pressure := napibench.StartPressure()
	t := &table{
		title: fmt.Sprintf("floors http: %.0f requests/s for %s per load (after %s of warm-up), %d-byte JSON body; CPU per request (µs) of the server (a child process), PostgreSQL's client backends and this process",
			o.rate, o.duration, o.warmup, len(body)),
		parties: []string{"server", "PostgreSQL", "floors"},
		extra:   []string{"GOMAXPROCS", "p50 ms", "p99 ms", "errors"},
	}
	for _, l := range o.loads {
		logf(o.progress, "http: %s", l)
		m, err := o.run(ctx, db, l, len(body))
		if err != nil {
			return err
		}
		t.add(m)
	}
	enc, pages := encodeCost(page)
	t.print(io.Out)
	fmt.Fprintf(io.Out, "  encoding/json.Marshal of the same page, in this process: %.1f µs of CPU per page (%d pages)\n",
		float64(enc)/float64(time.Microsecond), pages)
	fmt.Fprintf(io.Out, "  load average before/after: %s / %s; %s\n", load, napibench.LoadAverage(), pressure.Stop())
	return nil
}

// run measures one load on a child server of its own.
func (o httpOptions) run(ctx context.Context, db *sqlx.DB, l httpLoad, bodyLen int) (measure, error) {
	child, err := startChild(ctx, o, l.procs)
	if err != nil {
		return measure{}, err
	}
	defer child.stop()
	client := napibench.HTTPClient()
	defer client.CloseIdleConnections()
	url := "http://" + child.addr + "/" + l.route
	do := func(ctx context.Context, _ int) string {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return "request"
		}
		resp, err := client.Do(req)
		if err != nil {
			return "transport"
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		switch {
		case err != nil:
			return "read body"
		case resp.StatusCode != http.StatusOK:
			return "status " + strconv.Itoa(resp.StatusCode)
		case n != int64(bodyLen):
			return "body of " + strconv.FormatInt(n, 10) + " bytes"
		}
		return ""
	}
	if o.warmup > 0 {
		napibench.OpenLoop(ctx, l.String(), o.rate, o.warmup, do)
	}
	meter := proccpu.Start(ctx, db, child.pid)
	res := napibench.OpenLoop(ctx, l.String(), o.rate, o.duration, do)
	u := meter.Stop(ctx)
	if err := ctx.Err(); err != nil {
		return measure{}, err
	}
	if !u.PIDKnown[0] {
		return measure{}, fmt.Errorf("http %s: the server (pid %d) is gone", l, child.pid)
	}
	pg, pgKnown := u.Postgres, u.PostgresKnown
	if l.route == "nodb" && !pgKnown {
		pgKnown = true // no backend of the child at all: nothing spent
	}
	name := "GET /nodb: 2 KB body"
	if l.route == "db" {
		name = "GET /db: SELECT $1::int + 2 KB body"
	}
	return measure{
		name: name, ops: res.Sent, elapsed: res.Elapsed,
		cpu:   []time.Duration{u.PIDs[0], pg, u.Self},
		known: []bool{true, pgKnown, true},
		sys:   u.PIDSys[0],
		extra: []string{strconv.Itoa(child.procs), fmt.Sprintf("%.2f", ms(res.Latency.P50)), fmt.Sprintf("%.2f", ms(res.Latency.P99)), strconv.Itoa(res.ErrorSum)},
	}, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// child is a running `floors http-server`.
type child struct {
	cmd   *exec.Cmd
	pid   int
	addr  string
	procs int
}

// startChild re-executes this binary as `floors http-server` with the
// database URL in its environment (not on its command line), and reads
// the address it listens on.
func startChild(ctx context.Context, o httpOptions, procs int) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "http-server", "-conns", strconv.Itoa(o.conns))
	env := []string{"DATABASE_URL=" + o.db}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "GOMAXPROCS=") && !strings.HasPrefix(e, "DATABASE_URL=") {
			env = append(env, e)
		}
	}
	if procs > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(procs))
	}
	cmd.Env = env
	cmd.Stderr = o.childErr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlives the benchmark
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the server: %w", err)
	}
	c := &child{cmd: cmd, pid: cmd.Process.Pid}
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		if s.Scan() {
			line <- s.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case l, ok := <-line:
		if _, err := fmt.Sscanf(l, "listening %s gomaxprocs %d", &c.addr, &c.procs); !ok || err != nil {
			c.stop()
			return nil, fmt.Errorf("the server did not start (it said %q)", l)
		}
	case <-time.After(30 * time.Second):
		c.stop()
		return nil, errors.New("the server did not start in 30 s")
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	}
	return c, nil
}

// stop ends the server (SIGTERM, then SIGKILL after 5 s) and reaps it.
func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// runHTTPServer is `floors http-server`, the child of `floors http`: GET
// /db and GET /nodb on 127.0.0.1 until SIGTERM. Its first line on stdout
// is "listening ADDR gomaxprocs N".
func runHTTPServer(ctx context.Context, args []string, io cli.Stdio) error {
	c := cli.New("floors", "http-server", "The server of 'floors http', which starts it; not run by hand.")
	var dbURL string
	c.DBFlag(&dbURL)
	addr := c.FS.String("addr", "127.0.0.1:0", "listen address")
	conns := c.FS.Int("conns", 20, "PostgreSQL pool size")
	if err := c.Parse(args, io); err != nil {
		return err
	}
	db, err := postgres.Open(ctx, dbURL, *conns)
	if err != nil {
		return err
	}
	defer db.Close()
	stmt, err := db.PrepareContext(ctx, `SELECT $1::int`)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer stmt.Close()
	body, _, err := pageBody()
	if err != nil {
		return err
	}
	write := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}
	var seq atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /nodb", func(w http.ResponseWriter, _ *http.Request) { write(w) })
	mux.HandleFunc("GET /db", func(w http.ResponseWriter, r *http.Request) {
		var v int
		if err := stmt.QueryRowContext(r.Context(), seq.Add(1)%1000).Scan(&v); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		write(w)
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(io.Out, "listening %s gomaxprocs %d\n", ln.Addr(), runtime.GOMAXPROCS(0))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shut)
}

// listPage is a page of notifications shaped as the list route's answer.
type listPage struct {
	Data        []contract.Notification `json:"data"`
	NextCursor  *string                 `json:"nextCursor"`
	UnreadCount int64                   `json:"unreadCount"`
}

// pageBody is the body both routes write: a page of notifications of
// about 2 KB, encoded once (the floor is the transport's; encoding is
// measured apart, encodeCost).
func pageBody() ([]byte, listPage, error) {
	route, _ := contract.RouteOf("BOOKING_CREATED")
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	cursor := "eyJjIjoiMjAyNi0xMS0yN1QxMDowMDowMFoiLCJpIjoiMDE5YjAwMDAtMDAwMC03MDAwLTgwMDAtMDAwMDAwMDAwMDAwIn0"
	p := listPage{NextCursor: &cursor, UnreadCount: 3}
	for i := 0; ; i++ {
		b, err := json.Marshal(p)
		if err != nil || len(b) >= 2000 {
			return b, p, err
		}
		p.Data = append(p.Data, contract.Notification{
			ID: uuid.NewSHA1(uuid.NameSpaceOID, []byte{byte(i)}).String(), Type: route.InApp, Priority: route.Priority,
			Title: route.Title, Message: route.Message, Data: json.RawMessage(`{"bookingId":"BK-` + strconv.Itoa(100000+i) + `"}`),
			EventID: "evt-" + strconv.Itoa(100000+i), CreatedAt: at.Add(-time.Duration(i) * time.Minute),
		})
	}
}

// encodeCost is the CPU time of encoding the page with encoding/json in
// this process, per page, over about a second, and how many pages.
func encodeCost(p listPage) (time.Duration, int) {
	start, cpu := time.Now(), proccpu.Self()
	n := 0
	for time.Since(start) < time.Second {
		for range 100 {
			_, _ = json.Marshal(p)
		}
		n += 100
	}
	return (proccpu.Self() - cpu) / time.Duration(n), n
}
