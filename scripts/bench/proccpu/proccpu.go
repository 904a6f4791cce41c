// Package proccpu reads the CPU time processes spent, from /proc: one
// process by its pid, this process, a PostgreSQL cluster, and the client
// backends of a PostgreSQL database. The benchmarks (notifybench, floors) charge CPU to
// each party of a run with it: on a shared machine the CPU time per event
// says more than the rate a run reached. The figures exist only when the
// processes run on this machine.
package proccpu

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat; Linux fixes it at
// 100 for user space whatever the kernel's own tick.
const userHZ = 100

// Tick is the resolution of the times Of reads.
const Tick = time.Second / userHZ

// Of reads utime + stime of a process; false when it cannot be read (no
// such process, not Linux, pid <= 0).
func Of(pid int) (time.Duration, bool) {
	user, sys, ok := Split(pid)
	return user + sys, ok
}

// Split reads the user (utime) and system (stime) CPU time of a process
// apart: the system part is the kernel's work for it (system calls, network
// stack, scheduling).
func Split(pid int) (user, sys time.Duration, ok bool) {
	st, ok := read(pid)
	return st.user, st.sys, ok
}

// Cluster reads the CPU time of a PostgreSQL cluster from its postmaster's
// pid: the postmaster's own, that of its exited children (which the kernel
// adds to the postmaster's cutime and cstime), and that of its live children
// (backends, WAL writer, checkpointer, autovacuum). False when the
// postmaster cannot be read.
func Cluster(postmaster int) (time.Duration, bool) {
	pm, ok := read(postmaster)
	if !ok {
		return 0, false
	}
	t := pm.user + pm.sys + pm.childUser + pm.childSys
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == postmaster {
			continue
		}
		if st, ok := read(pid); ok && st.ppid == postmaster {
			t += st.user + st.sys
		}
	}
	return t, true
}

// stat is what the benchmarks read from /proc/<pid>/stat.
type stat struct {
	ppid                           int
	user, sys, childUser, childSys time.Duration
}

func read(pid int) (stat, bool) {
	if pid <= 0 {
		return stat{}, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, false // no such process (or gone meanwhile), not Linux
	}
	return parseStat(string(b))
}

// parseStat reads the text of /proc/<pid>/stat.
func parseStat(s string) (stat, bool) {
	// The command name, in parentheses, may hold spaces and parentheses:
	// the fields count from the last ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return stat{}, false
	}
	// After the name: [0] state, [1] ppid, … [11] utime, [12] stime,
	// [13] cutime, [14] cstime.
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return stat{}, false
	}
	var v [5]int64
	for j, k := range []int{1, 11, 12, 13, 14} {
		n, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil || n < 0 {
			return stat{}, false
		}
		v[j] = n
	}
	return stat{ppid: int(v[0]), user: time.Duration(v[1]) * Tick, sys: time.Duration(v[2]) * Tick,
		childUser: time.Duration(v[3]) * Tick, childSys: time.Duration(v[4]) * Tick}, true
}

// Self is the CPU time (user + system) of this process so far, from
// getrusage: finer than a clock tick.
func Self() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Backends reads the CPU time of each client backend of db's database
// (pid → CPU), except the backend that runs this query: the meter's own
// connection is not a party of the run. It reports false when the list or
// a backend's /proc entry cannot be read (PostgreSQL on another machine)
// or when there is no other backend.
func Backends(ctx context.Context, db *sqlx.DB) (map[int]time.Duration, bool) {
	var pids []int
	if err := db.SelectContext(ctx, &pids, `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()`); err != nil {
		return nil, false
	}
	out := make(map[int]time.Duration, len(pids))
	for _, pid := range pids {
		t, ok := Of(pid)
		if !ok {
			return nil, false
		}
		out[pid] = t
	}
	return out, len(out) > 0
}

// Spent is what a set of backends spent between two readings of Backends:
// a backend that appeared in between counts from zero; one that ended is
// lost (the pools of the services keep their connections).
func Spent(start, end map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, t := range end {
		d += t - start[pid]
	}
	return d
}

// Use is the CPU time the parties of a run spent between Start and Stop.
type Use struct {
	PIDs     []time.Duration // of each process given to Start, in its order
	PIDSys   []time.Duration // the system part of PIDs
	PIDKnown []bool          // false where the process could not be read at either end
	Postgres time.Duration   // the client backends of the database (0 without a database)
	// PostgresKnown is false without a database, or when its backends'
	// /proc entries could not be read.
	PostgresKnown bool
	Self          time.Duration // this process
}

// Meter samples the CPU time of some processes, of a database's backends
// and of this process, remembering each backend so that Stop counts only
// what was spent in between.
type Meter struct {
	db       *sqlx.DB
	pids     []int
	user     []time.Duration // at start
	sys      []time.Duration
	known    []bool
	backends map[int]time.Duration
	pgKnown  bool
	self     time.Duration
}

// Start begins a measure of the processes pids and, when db is not nil, of
// the client backends of its database.
func Start(ctx context.Context, db *sqlx.DB, pids ...int) *Meter {
	m := &Meter{db: db, pids: pids, user: make([]time.Duration, len(pids)), sys: make([]time.Duration, len(pids)), known: make([]bool, len(pids))}
	if db != nil {
		m.backends, m.pgKnown = Backends(ctx, db)
	}
	for i, pid := range pids {
		m.user[i], m.sys[i], m.known[i] = Split(pid)
	}
	m.self = Self()
	return m
}

// Stop returns what was spent since Start.
func (m *Meter) Stop(ctx context.Context) Use {
	n := len(m.pids)
	u := Use{PIDs: make([]time.Duration, n), PIDSys: make([]time.Duration, n), PIDKnown: make([]bool, n)}
	u.Self = Self() - m.self
	for i, pid := range m.pids {
		user, sys, ok := Split(pid)
		if ok && m.known[i] {
			u.PIDSys[i] = sys - m.sys[i]
			u.PIDs[i], u.PIDKnown[i] = user-m.user[i]+u.PIDSys[i], true
		}
	}
	if m.db != nil {
		end, ok := Backends(ctx, m.db)
		u.PostgresKnown = ok && m.pgKnown
		u.Postgres = Spent(m.backends, end)
	}
	return u
}
