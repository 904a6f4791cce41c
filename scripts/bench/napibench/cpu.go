package napibench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
)

// On a shared machine the rate a run reaches says as much about the
// neighbours as about the service; the CPU time the service, its database
// sessions and the benchmark itself spent per event does not. These figures
// come from /proc, so they exist only when everything runs on this machine.

// userHZ is the unit of the CPU times in /proc/<pid>/stat; Linux fixes it at
// 100 for user space whatever the kernel's own tick.
const userHZ = 100

// CPUUse is CPU time (user + system) spent by the parties of a run.
type CPUUse struct {
	Service  time.Duration // the service process (notifyd or notification-api); 0 when unknown
	Postgres time.Duration // the client backends of the service's database
	Bench    time.Duration // this process
	// PostgresKnown is false when the backends' /proc entries could not be read
	// (PostgreSQL on another machine).
	PostgresKnown, ServiceKnown bool
}

// Total of the known parts.
func (c CPUUse) Total() time.Duration { return c.Service + c.Postgres + c.Bench }

// cpuMeter samples the CPU time of the service and of the database's
// backends, remembering each backend so that a delta counts only what was
// spent in between.
type cpuMeter struct {
	db         *sqlx.DB
	servicePID int
	start      map[int]time.Duration // backend pid → CPU at start
	begin      CPUUse
}

func startCPU(ctx context.Context, db *sqlx.DB, servicePID int) *cpuMeter {
	m := &cpuMeter{db: db, servicePID: servicePID}
	m.start, m.begin.PostgresKnown = m.backends(ctx)
	m.begin.Service, m.begin.ServiceKnown = procCPU(servicePID)
	m.begin.Bench = selfCPU()
	return m
}

// stop returns what was spent since start. Backends that appeared in
// between count from zero; those that ended are lost (the service's pool
// keeps its connections).
func (m *cpuMeter) stop(ctx context.Context) CPUUse {
	var use CPUUse
	end, ok := m.backends(ctx)
	use.PostgresKnown = ok && m.begin.PostgresKnown
	for pid, t := range end {
		use.Postgres += t - m.start[pid]
	}
	svc, ok := procCPU(m.servicePID)
	use.ServiceKnown = ok && m.begin.ServiceKnown
	if use.ServiceKnown {
		use.Service = svc - m.begin.Service
	}
	use.Bench = selfCPU() - m.begin.Bench
	return use
}

func (m *cpuMeter) backends(ctx context.Context) (map[int]time.Duration, bool) {
	var pids []int
	if err := m.db.SelectContext(ctx, &pids, `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND backend_type = 'client backend'`); err != nil {
		return nil, false
	}
	out := make(map[int]time.Duration, len(pids))
	for _, pid := range pids {
		t, ok := procCPU(pid)
		if !ok {
			return nil, false
		}
		out[pid] = t
	}
	return out, len(out) > 0
}

// procCPU reads utime + stime of a process.
func procCPU(pid int) (time.Duration, bool) {
	if pid <= 0 {
		return 0, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name may hold spaces; the fields after it are fixed.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 { // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name
		return 0, false
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(ut+st) * time.Second / userHZ, true
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// perUnit describes the CPU use of a run per event or request, and the rate
// the machine's cores could sustain at that cost if nothing else ran.
func (c CPUUse) perUnit(n int, unit string, cores int) string {
	if n == 0 {
		return "n/a"
	}
	per := func(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d.Microseconds())/float64(n)) }
	parts := []string{}
	if c.ServiceKnown {
		parts = append(parts, "service "+per(c.Service))
	}
	if c.PostgresKnown {
		parts = append(parts, "PostgreSQL backends "+per(c.Postgres))
	}
	parts = append(parts, "benchmark "+per(c.Bench))
	s := fmt.Sprintf("CPU per %s: %s = %s", unit, strings.Join(parts, " + "), per(c.Total()))
	if c.ServiceKnown && c.PostgresKnown && c.Total() > 0 {
		s += fmt.Sprintf(" → CPU-bound ceiling %.0f %ss/s on %d idle cores (PostgreSQL's WAL writer and checkpointer not counted)", float64(cores)*float64(n)/c.Total().Seconds(), unit, cores)
	}
	return s
}
