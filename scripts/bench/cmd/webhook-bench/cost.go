package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"
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

// statFields are the fields of /proc/<pid>/stat after the command name:
// [0] state, [1] ppid, … [11] utime, [12] stime, [13] cutime, [14] cstime.
func statFields(pid string) []string {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return nil // gone meanwhile
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return nil
	}
	return f
}

func sum(f []string, idx ...int) int64 {
	var t int64
	for _, i := range idx {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		t += v
	}
	return t
}

// ticks is the CPU time of p in clock ticks (USER_HZ, 100 a second): a
// process's utime+stime; a cluster's postmaster with its exited children
// and its live children (backends, WAL writer, checkpointer, autovacuum),
// as scripts/bench-lib.sh counts it.
func (p party) ticks() int64 {
	if !p.cluster {
		if f := statFields(strconv.Itoa(p.pid)); f != nil {
			return sum(f, 11, 12)
		}
		return 0
	}
	var t int64
	dirs, _ := os.ReadDir("/proc")
	pm := strconv.Itoa(p.pid)
	for _, d := range dirs {
		if d.Name()[0] < '0' || d.Name()[0] > '9' {
			continue
		}
		f := statFields(d.Name())
		switch {
		case f == nil:
		case d.Name() == pm:
			t += sum(f, 11, 12, 13, 14)
		case f[1] == pm:
			t += sum(f, 11, 12)
		}
	}
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
	at      []int64
	pg      pgMark
	db      *sqlx.DB
}

func startMeter(ctx context.Context, parties []party, db *sqlx.DB) (*meter, error) {
	m := &meter{parties: parties, db: db}
	for _, p := range parties {
		m.at = append(m.at, p.ticks())
	}
	var err error
	m.pg, err = markPG(ctx, db)
	return m, err
}

// report prints CPU-seconds per 1,000 deliveries of each party, the
// dispatcher + PostgreSQL figure of the target, and PostgreSQL's write
// transactions and WAL bytes per delivery.
func (m *meter) report(ctx context.Context, units int) error {
	per := func(t int64) float64 { return float64(t) / 100 / float64(units) * 1000 }
	var line []string
	var total int64
	byName := map[string]int64{}
	for i, p := range m.parties {
		t := p.ticks() - m.at[i]
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
