package gwbench

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/xpeditis/notify/scripts/bench/proccpu"
)

// rssKB reads the resident set size of a process from /proc/<pid>/status.
func rssKB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read rss: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("read rss: %q: %w", v, err)
			}
			return kb, nil
		}
	}
	return 0, fmt.Errorf("read rss of %d: no VmRSS line", pid)
}

// clockTicks is USER_HZ, the unit of cpuTicks: time.Second / proccpu.Tick.
const clockTicks = 100

// cpuTicks reads the user and system CPU time of a process, in clock ticks.
func cpuTicks(pid int) (int64, error) {
	d, ok := proccpu.Of(pid)
	if !ok {
		return 0, fmt.Errorf("read cpu of %d: no readable /proc/%d/stat", pid, pid)
	}
	return int64(d / proccpu.Tick), nil
}

// openFilesLimit reads the soft limit on open files of a process.
func openFilesLimit(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0, fmt.Errorf("read limits: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) < 1 {
				break
			}
			if f[0] == "unlimited" {
				return 1 << 62, nil
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("read limits of %d: no open files line", pid)
}

// loadAvg is the first three fields of /proc/loadavg, as uptime prints them.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// percentiles returns the values at the given quantiles (0..1) of the
// samples, in milliseconds, by the nearest-rank method; samples are in
// microseconds and get sorted.
func percentiles(samples []uint32, qs ...float64) []float64 {
	out := make([]float64, len(qs))
	if len(samples) == 0 {
		return out
	}
	slices.Sort(samples)
	for i, q := range qs {
		rank := int(math.Ceil(q*float64(len(samples)))) - 1
		rank = min(max(rank, 0), len(samples)-1)
		out[i] = float64(samples[rank]) / 1000
	}
	return out
}

// runqueueWaitNs adds up, over the threads of a process, the time they
// spent runnable but waiting for a CPU (the second field of
// /proc/<pid>/task/<tid>/schedstat). Its growth during a phase tells how
// much of a latency tail is the machine's doing rather than the server's.
func runqueueWaitNs(pid int) (int64, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("read run-queue wait: %w", err)
	}
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if err != nil {
			continue // the thread ended
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			continue
		}
		if v, err := strconv.ParseInt(f[1], 10, 64); err == nil {
			sum += v
		}
	}
	return sum, nil
}

// processes are the processes of one server, whose figures add up.
type processes []int

func (ps processes) rssKB() (int64, error)          { return ps.sum(rssKB) }
func (ps processes) cpuTicks() (int64, error)       { return ps.sum(cpuTicks) }
func (ps processes) runqueueWaitNs() (int64, error) { return ps.sum(runqueueWaitNs) }

func (ps processes) sum(read func(pid int) (int64, error)) (int64, error) {
	var total int64
	for _, pid := range ps {
		v, err := read(pid)
		if err != nil {
			return 0, err
		}
		total += v
	}
	return total, nil
}
