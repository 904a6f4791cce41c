package napibench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/postgres"
)

// ListOptions configure the list benchmark.
type ListOptions struct {
	BaseURL     string // the service, e.g. http://127.0.0.1:8080
	DatabaseURL string // its database, for the seed and the query plans
	Seed        Seed
	Rate        float64       // requests/s of each load
	Duration    time.Duration // of each load
	Warmup      time.Duration // unmeasured load at the same rate before each one
	Limit       int           // page size
	DeepPage    int           // the page of the cursor chain the deep load asks for
	DeepUsers   int           // users whose cursor chain is walked to DeepPage
	// Token minting: the service's JWT_SECRET and, when it checks them, issuer
	// and audience.
	Secret, Issuer, Audience string
	// ServicePID is the process id of the service, when it runs on this
	// machine, for its CPU time; 0 leaves it out.
	ServicePID int
	Progress   io.Writer
}

// ListResult holds the figures of the list benchmark.
type ListResult struct {
	Options    ListOptions
	SeedReused bool
	SeedTime   time.Duration
	Loads      []Load
	Plans      []Plan
	LoadAvg    [2]string
}

// Plan is the EXPLAIN ANALYZE output of one query as the service runs it.
type Plan struct {
	Name, Query, Text string
}

// TargetP99 is the latency goal of issue 2 for a list page.
const TargetP99 = 10 * time.Millisecond

// List seeds the table (or reuses the seed), then drives GET
// /api/v1/notifications at a constant arrival rate for random seeded users:
// once for their first page, once for a page deep in their cursor chain.
func List(ctx context.Context, o ListOptions) (*ListResult, error) {
	if o.Rate <= 0 || o.Duration <= 0 || o.Limit < 1 || o.DeepPage < 2 || o.DeepUsers < 1 {
		return nil, errors.New("bench list: rate, duration, limit, deep page (>= 2) and deep users must be positive")
	}
	if o.DatabaseURL == "" {
		return nil, errors.New("bench list: the service's database is needed for the seed: set -db or DATABASE_URL")
	}
	if need := o.DeepPage * o.Limit; o.Seed.Rows/o.Seed.Users < need {
		return nil, fmt.Errorf("bench list: page %d of %d needs %d rows per user; the seed has %d", o.DeepPage, o.Limit, need, o.Seed.Rows/o.Seed.Users)
	}
	res := &ListResult{Options: o}
	res.LoadAvg[0] = LoadAverage()
	db, err := postgres.Open(ctx, o.DatabaseURL, o.Seed.Streams+1)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	start := time.Now()
	if res.SeedReused, err = EnsureSeed(ctx, db, o.Seed, o.Progress); err != nil {
		return nil, err
	}
	res.SeedTime = time.Since(start)

	c := newListClient(o)
	if err := c.check(ctx); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	first := func(ctx context.Context, _ int) string {
		return c.page(ctx, rand.IntN(o.Seed.Users), "", o.Limit) // the global source is safe for concurrent use
	}
	logf(o.Progress, "walking the cursor chain of %d users to page %d", o.DeepUsers, o.DeepPage)
	deep, err := c.deepCursors(ctx, rng, o.DeepUsers)
	if err != nil {
		return nil, err
	}
	deepLoad := func(ctx context.Context, _ int) string {
		d := deep[rand.IntN(len(deep))]
		return c.page(ctx, d.user, d.cursor, o.Limit)
	}
	for _, l := range []struct {
		name string
		do   func(context.Context, int) string
	}{
		{fmt.Sprintf("first page (limit=%d)", o.Limit), first},
		{fmt.Sprintf("page %d via cursor (limit=%d)", o.DeepPage, o.Limit), deepLoad},
	} {
		if o.Warmup > 0 {
			logf(o.Progress, "%s: warm-up %s at %.0f/s", l.name, o.Warmup, o.Rate)
			OpenLoop(ctx, l.name, o.Rate, o.Warmup, l.do)
		}
		logf(o.Progress, "%s: %s at %.0f/s", l.name, o.Duration, o.Rate)
		meter := startCPU(ctx, db, o.ServicePID)
		load := OpenLoop(ctx, l.name, o.Rate, o.Duration, l.do)
		load.CPU = meter.stop(ctx)
		res.Loads = append(res.Loads, load)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	res.LoadAvg[1] = LoadAverage()
	if res.Plans, err = explain(ctx, db, SeedUser(rng.IntN(o.Seed.Users)), o.Limit, o.DeepPage); err != nil {
		return nil, err
	}
	return res, nil
}

// listClient sends list requests as the seeded users.
type listClient struct {
	base   string
	http   *http.Client
	tokens []string
	limit  int
	deep   int
}

// HTTPClient is the client of the open-loop loads: keep-alive connections
// to one host, as many idle as the load needs, no compression (its CPU
// would be the benchmark's and the server's, not the route's).
func HTTPClient() *http.Client {
	tr := &http.Transport{
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func newListClient(o ListOptions) *listClient {
	c := &listClient{
		base:   strings.TrimRight(o.BaseURL, "/"),
		http:   HTTPClient(),
		tokens: make([]string, o.Seed.Users),
		limit:  o.Limit,
		deep:   o.DeepPage,
	}
	for i := range c.tokens {
		// Minted up front: signing is the benchmark's work, not the service's.
		c.tokens[i], _ = auth.Mint(o.Secret, auth.MintOptions{
			UserID: SeedUser(i), OrganizationID: "seed-org-" + strconv.Itoa(i%100), Role: "MEMBER",
			TTL: 2 * time.Hour, Issuer: o.Issuer, Audience: o.Audience,
		})
	}
	return c
}

// listPage is the part of a list response the benchmark checks; ids only,
// to keep the client's own CPU small next to the service's.
type listPage struct {
	Data []struct {
		ID string `json:"id"`
	} `json:"data"`
	NextCursor  *string `json:"nextCursor"`
	UnreadCount *int64  `json:"unreadCount"`
}

// get fetches one page; the error kind is "" on success.
func (c *listClient) get(ctx context.Context, user int, cursor string, limit int) (listPage, string) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/v1/notifications?"+q.Encode(), nil)
	if err != nil {
		return listPage{}, "request: " + err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+c.tokens[user])
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return listPage{}, "cancelled"
		}
		return listPage{}, "transport"
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return listPage{}, "read body"
	}
	if resp.StatusCode != http.StatusOK {
		return listPage{}, "status " + strconv.Itoa(resp.StatusCode)
	}
	var p listPage
	if err := json.Unmarshal(body, &p); err != nil || p.UnreadCount == nil {
		return listPage{}, "bad body"
	}
	return p, ""
}

// page is one measured request: a full page is the only success, since
// every seeded user has more rows than the deepest page asked for.
func (c *listClient) page(ctx context.Context, user int, cursor string, limit int) string {
	p, kind := c.get(ctx, user, cursor, limit)
	if kind == "" && len(p.Data) != limit {
		return "short page"
	}
	return kind
}

// check makes one request so that a wrong URL or secret fails at once
// rather than as thousands of errors.
func (c *listClient) check(ctx context.Context) error {
	if _, kind := c.get(ctx, 0, "", c.limit); kind != "" {
		return fmt.Errorf("bench list: GET %s/api/v1/notifications as %s: %s (is the service running, with this JWT secret?)", c.base, SeedUser(0), kind)
	}
	return nil
}

type deepCursor struct {
	user   int
	cursor string
}

// deepCursors follows the cursor chain of n random users, as a client
// paging would, to the cursor that starts page c.deep; pages of 100 get
// there in fewer requests, and a cursor does not depend on the page size.
func (c *listClient) deepCursors(ctx context.Context, rng *rand.Rand, n int) ([]deepCursor, error) {
	users := rng.Perm(len(c.tokens))[:min(n, len(c.tokens))]
	out := make([]deepCursor, len(users))
	errs := make([]error, len(users))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, u := range users {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			cursor := ""
			for skip := (c.deep - 1) * c.limit; skip > 0; {
				size := min(skip, 100)
				p, kind := c.get(ctx, u, cursor, size)
				if kind == "" && (len(p.Data) != size || p.NextCursor == nil) {
					kind = "chain ended early"
				}
				if kind != "" {
					errs[i] = fmt.Errorf("cursor chain of %s: %s", SeedUser(u), kind)
					return
				}
				cursor, skip = *p.NextCursor, skip-size
			}
			out[i] = deepCursor{user: u, cursor: cursor}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// explain runs EXPLAIN ANALYZE on the statements the list route sends, with
// the values of one request. The service prepares them, and after a few
// executions PostgreSQL may use their generic plan, so that is the plan
// shown (plan_cache_mode = force_generic_plan). The SQL mirrors
// notification-api's store (internal to its module): change both together.
func explain(ctx context.Context, db *sqlx.DB, user string, limit, deepPage int) ([]Plan, error) {
	const unread = `SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL`
	// A list's query carries the user's unread count (an InitPlan run once).
	const columns = `id, user_id, org_id, event_id, type, priority, title, message, data, read_at, created_at, (` + unread + `) AS unread`
	var after struct {
		CreatedAt time.Time `db:"created_at"`
		ID        string    `db:"id"`
	}
	if err := db.GetContext(ctx, &after, `SELECT created_at, id FROM notifications WHERE user_id = $1
		ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT 1`, user, (deepPage-1)*limit-1); err != nil {
		return nil, fmt.Errorf("explain: cursor of page %d: %w", deepPage, err)
	}
	fetch := strconv.Itoa(limit + 1) // the store reads one more row to know whether a next page exists
	u := pq.QuoteLiteral(user)
	plans := []struct {
		Plan
		values string
	}{
		{Plan{Name: "list, first page", Query: `SELECT ` + columns + ` FROM notifications WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2`},
			u + ", " + fetch},
		{Plan{Name: fmt.Sprintf("list, page %d by cursor", deepPage), Query: `SELECT ` + columns + ` FROM notifications WHERE user_id = $1 AND (created_at, id) < ($2, $3) ORDER BY created_at DESC, id DESC LIMIT $4`},
			u + ", " + pq.QuoteLiteral(after.CreatedAt.Format(time.RFC3339Nano)) + ", " + pq.QuoteLiteral(after.ID) + ", " + fetch},
		{Plan{Name: "unread count (its own route, and an empty page)", Query: unread},
			u},
	}
	conn, err := db.Connx(ctx) // PREPARE and SET belong to one session
	if err != nil {
		return nil, fmt.Errorf("explain: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SET plan_cache_mode = force_generic_plan`); err != nil {
		return nil, fmt.Errorf("explain: %w", err)
	}
	defer func() { _, _ = conn.ExecContext(context.WithoutCancel(ctx), `RESET plan_cache_mode; DEALLOCATE ALL`) }()
	out := make([]Plan, len(plans))
	for i, p := range plans {
		name := "bench_explain_" + strconv.Itoa(i)
		if _, err := conn.ExecContext(ctx, `PREPARE `+name+` AS `+p.Query); err != nil {
			return nil, fmt.Errorf("explain %s: %w", p.Name, err)
		}
		var lines []string
		if err := conn.SelectContext(ctx, &lines, `EXPLAIN (ANALYZE, BUFFERS) EXECUTE `+name+`(`+p.values+`)`); err != nil {
			return nil, fmt.Errorf("explain %s: %w", p.Name, err)
		}
		out[i] = p.Plan
		out[i].Query += "  -- with (" + p.values + ")"
		out[i].Text = strings.Join(lines, "\n")
	}
	return out, nil
}

// Report writes the figures for people.
func (r *ListResult) Report(w io.Writer) {
	o := r.Options
	how := "reused (marker in bench_seed)"
	if !r.SeedReused {
		how = "loaded with COPY in " + r.SeedTime.Round(time.Second).String()
	}
	fmt.Fprintf(w, "list: %d notifications over %d users (%d each), seed %s\n", o.Seed.Rows, o.Seed.Users, o.Seed.Rows/o.Seed.Users, how)
	fmt.Fprintf(w, "  load average before/after: %s / %s\n", r.LoadAvg[0], r.LoadAvg[1])
	for _, l := range r.Loads {
		verdict := "met"
		if l.Latency.P99 > TargetP99 {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "  GET /api/v1/notifications, %s: %d requests in %s (%.0f/s, open loop, random users)\n", l.Name, l.Sent, l.Elapsed.Round(time.Millisecond), l.Achieved())
		fmt.Fprintf(w, "    latency %s; target p99 <= %s %s\n", l.Latency, ms(TargetP99), verdict)
		fmt.Fprintf(w, "    errors: %s; generator lag p99 %s max %s; %s\n", l.ErrorText(), ms(l.Lag.P99), ms(l.Lag.Max), l.Pressure)
		fmt.Fprintf(w, "    %s\n", l.CPU.perUnit(l.Sent, "request", runtime.NumCPU()))
	}
	for _, p := range r.Plans {
		fmt.Fprintf(w, "  EXPLAIN (ANALYZE, BUFFERS), generic plan, %s:\n    %s\n    %s\n", p.Name, p.Query, strings.ReplaceAll(p.Text, "\n", "\n    "))
	}
}

// Check fails a run in which requests failed: its latencies would describe
// errors, not pages.
func (r *ListResult) Check() error {
	var errs []error
	for _, l := range r.Loads {
		if l.ErrorSum > 0 {
			errs = append(errs, fmt.Errorf("%s: %d of %d requests failed: %s", l.Name, l.ErrorSum, l.Sent, l.ErrorText()))
		}
	}
	return errors.Join(errs...)
}
