package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/xpeditis/notify/scripts/bench/proccpu"
)

// party is a process (or a PostgreSQL cluster) whose CPU time is charged
// to the deliveries: -cost name=pid or name=cluster:postmaster-pid; the
// load generator itself is always counted.
type party struct {
	name    string
	pid     int
	cluster bool
}

func parseParties(spec string) ([]party, error) {
	var out []party
	for _, f := range strings.Split(spec, ",") {
		if f == "" {
			continue
		}
		name, v, ok := strings.Cut(f, "=")
		cluster := strings.HasPrefix(v, "cluster:")
		pid, err := strconv.Atoi(strings.TrimPrefix(v, "cluster:"))
		if !ok || err != nil {
			return nil, fmt.Errorf("-cost: %q is not name=pid or name=cluster:pid", f)
		}
		out = append(out, party{name: name, pid: pid, cluster: cluster})
	}
	return append(out, party{name: "webhook-bench", pid: os.Getpid()}), nil
}

// cpu is the CPU time p has spent: a process's, or a whole cluster's
// (proccpu.Cluster), as scripts/bench-lib.sh counts it; 0 once gone.
func (p party) cpu() time.Duration {
	if p.cluster {
		t, _ := proccpu.Cluster(p.pid)
		return t
	}
	t, _ := proccpu.Of(p.pid)
	return t
}

// pgMark is the write transactions so far (transaction ids handed out) and
// the WAL position of the cluster.
type pgMark struct{ xid, wal int64 }

func markPG(ctx context.Context, db *sqlx.DB) (pgMark, error) {
	var m pgMark
	err := db.QueryRowContext(ctx, `SELECT txid_current(), (pg_current_wal_lsn() - '0/0')::bigint`).Scan(&m.xid, &m.wal)
	return m, err
}

// meter brackets the delivery phase of a run.
type meter struct {
	parties []party
	at      []time.Duration
	pg      pgMark
	db      *sqlx.DB
}

func startMeter(ctx context.Context, parties []party, db *sqlx.DB) (*meter, error) {
	m := &meter{parties: parties, db: db}
	for _, p := range parties {
		m.at = append(m.at, p.cpu())
	}
	var err error
	m.pg, err = markPG(ctx, db)
	return m, err
}

// report prints CPU-seconds per 1,000 deliveries of each party, the
// dispatcher + PostgreSQL figure of the target, and PostgreSQL's write
// transactions and WAL bytes per delivery.
func (m *meter) report(ctx context.Context, units int) error {
	per := func(t time.Duration) float64 { return t.Seconds() / float64(units) * 1000 }
	var line []string
	var total time.Duration
	byName := map[string]time.Duration{}
	for i, p := range m.parties {
		t := p.cpu() - m.at[i]
		total += t
		byName[p.name] = t
		line = append(line, fmt.Sprintf("%s %.3f", p.name, per(t)))
	}
	fmt.Printf("cost: CPU-seconds per 1,000 deliveries: %s, total %.3f (%.0f µs each)\n", strings.Join(line, ", "), per(total), per(total)*1000)
	if d, ok := byName["webhook-dispatcher"]; ok {
		pg := byName["postgresql"]
		fmt.Printf("cost: webhook-dispatcher + PostgreSQL: %.0f µs per delivery (+ nats-server %.0f µs)\n", per(d+pg)*1000, per(byName["nats-server"])*1000)
	}
	end, err := markPG(ctx, m.db)
	if err != nil {
		return err
	}
	x := end.xid - m.pg.xid - 1 // the mark's own txid_current
	fmt.Printf("PostgreSQL: %d write transactions (%.2f per 1,000 deliveries), %.0f bytes of WAL each\n",
		x, float64(x)/float64(units)*1000, float64(end.wal-m.pg.wal)/float64(units))
	return nil
}
