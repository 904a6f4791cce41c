package napibench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/xpeditis/notify/scripts/bench/proccpu"
)

// On a shared machine the rate a run reaches says as much about the
// neighbours as about the service; the CPU time the service, its database
// sessions and the benchmark itself spent per event does not. These figures
// come from /proc (package proccpu), so they exist only when everything runs
// on this machine.

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

// cpuMeter measures the service and the database's backends
// (proccpu.Meter).
type cpuMeter struct{ m *proccpu.Meter }

func startCPU(ctx context.Context, db *sqlx.DB, servicePID int) cpuMeter {
	return cpuMeter{proccpu.Start(ctx, db, servicePID)}
}

// stop returns what was spent since start. Backends that appeared in
// between count from zero; those that ended are lost (the service's pool
// keeps its connections).
func (m cpuMeter) stop(ctx context.Context) CPUUse {
	u := m.m.Stop(ctx)
	return CPUUse{Service: u.PIDs[0], ServiceKnown: u.PIDKnown[0], Postgres: u.Postgres, PostgresKnown: u.PostgresKnown, Bench: u.Self}
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
