package proccpu

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		name, line string
		want       stat
		ok         bool
	}{
		{"plain", "1234 (nats-server) S 1 1234 1234 0 -1 4194560 2000 0 0 0 250 75 0 0 20 0 9 0 100 0 0",
			stat{ppid: 1, user: 2500 * ms, sys: 750 * ms}, true},
		// The name may hold spaces and parentheses; fields count from the last ')'.
		{"odd name", "77 (a) b (c)) R 9 77 77 0 -1 0 0 0 0 0 3 4 5 6 20 0 1 0 100 0 0",
			stat{ppid: 9, user: 30 * ms, sys: 40 * ms, childUser: 50 * ms, childSys: 60 * ms}, true},
		{"no name", "77 a R 1", stat{}, false},
		{"short", "77 (x) R 1 77 77 0 -1 0 0 0 0 0 3 4 5", stat{}, false},
		{"not a number", "77 (x) R 1 77 77 0 -1 0 0 0 0 0 three 4 5 6", stat{}, false},
		{"negative", "77 (x) R 1 77 77 0 -1 0 0 0 0 0 -3 4 5 6", stat{}, false},
	} {
		got, ok := parseStat(c.line)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: got %+v %v, want %+v %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

// A cluster's time holds its exited children's: here this process stands
// for the postmaster, and a shell that counted for a while for a backend.
func TestClusterCountsExitedChildren(t *testing.T) {
	before, ok := Cluster(os.Getpid())
	if !ok {
		t.Fatal("this process cannot be read")
	}
	child := exec.Command("sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done")
	if err := child.Run(); err != nil {
		t.Fatal(err)
	}
	spent := child.ProcessState.UserTime() + child.ProcessState.SystemTime()
	after, _ := Cluster(os.Getpid())
	self, _ := Of(os.Getpid())
	if spent < 10*Tick {
		t.Fatalf("the child spent only %s", spent)
	}
	// The kernel rounds each to its ticks: allow two.
	if grew := after - before; grew < spent-2*Tick {
		t.Fatalf("the cluster's time grew by %s, its exited child spent %s", grew, spent)
	}
	if after < self+spent-2*Tick {
		t.Fatalf("cluster %s < own %s + child %s", after, self, spent)
	}
	if _, ok := Cluster(0); ok {
		t.Fatal("pid 0 must be unknown")
	}
}

func TestSpentCountsNewBackendsFromZero(t *testing.T) {
	start := map[int]time.Duration{10: time.Second, 11: 2 * time.Second, 12: time.Second}
	end := map[int]time.Duration{10: 3 * time.Second, 11: 2 * time.Second, 13: 500 * time.Millisecond} // 12 ended, 13 is new
	if got, want := Spent(start, end), 2500*time.Millisecond; got != want {
		t.Fatalf("Spent = %s, want %s", got, want)
	}
	if Spent(nil, nil) != 0 {
		t.Fatal("nothing spent by no backend")
	}
}

func TestCPUOfThisProcessIsRead(t *testing.T) {
	// Spend CPU time, not wall time: on a busy machine a wall-clock loop may
	// get little of it.
	for deadline := time.Now().Add(10 * time.Second); Self() < 100*time.Millisecond; {
		if time.Now().After(deadline) {
			t.Fatalf("getrusage reports %s after 10 s of spinning", Self())
		}
	}
	d, ok := Of(os.Getpid())
	self := Self()
	if !ok || d < 50*time.Millisecond || d > self+50*time.Millisecond {
		t.Fatalf("/proc says %s (%v), getrusage %s", d, ok, self)
	}
	if _, ok := Of(0); ok {
		t.Fatal("pid 0 must be unknown")
	}
}

func TestMeterWithoutDatabase(t *testing.T) {
	ctx := context.Background()
	m := Start(ctx, nil, os.Getpid(), -1)
	for begin := Self(); Self()-begin < 30*time.Millisecond; {
	}
	u := m.Stop(ctx)
	if u.PostgresKnown || u.Postgres != 0 {
		t.Fatalf("no database, yet PostgreSQL %s (%v)", u.Postgres, u.PostgresKnown)
	}
	if !u.PIDKnown[0] || u.PIDKnown[1] {
		t.Fatalf("known: %v, want [true false]", u.PIDKnown)
	}
	if u.Self < 30*time.Millisecond {
		t.Fatalf("self %s after spinning 30 ms of CPU", u.Self)
	}
	if u.PIDs[0] > u.Self+2*Tick || u.PIDSys[0] > u.PIDs[0] {
		t.Fatalf("this process by /proc %s (system %s), by getrusage %s", u.PIDs[0], u.PIDSys[0], u.Self)
	}
}
