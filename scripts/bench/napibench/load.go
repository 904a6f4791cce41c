package napibench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// The machine is shared, so every figure is printed with how busy the
// machine was while it was taken.

// LoadAverage is the 1, 5 and 15 minute load of the machine, or "n/a".
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "n/a"
	}
	return strings.Join(f[:3], " ")
}

// cpuWait reads the kernel's pressure stall information: the total time
// during which at least one runnable task waited for a CPU.
func cpuWait() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "some ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "total="); ok {
				us, err := strconv.ParseInt(v, 10, 64)
				return time.Duration(us) * time.Microsecond, err == nil
			}
		}
	}
	return 0, false
}

// Pressure measures CPU contention over an interval.
type Pressure struct {
	start time.Time
	wait  time.Duration
	ok    bool
	Share float64 // of the interval during which some task waited for a CPU; -1 when unknown
}

// StartPressure begins an interval.
func StartPressure() Pressure {
	w, ok := cpuWait()
	return Pressure{start: time.Now(), wait: w, ok: ok, Share: -1}
}

// Stop ends the interval and fills Share.
func (p Pressure) Stop() Pressure {
	w, ok := cpuWait()
	if p.ok && ok {
		p.Share = float64(w-p.wait) / float64(time.Since(p.start))
	}
	return p
}

func (p Pressure) String() string {
	if p.Share < 0 {
		return "CPU pressure n/a"
	}
	return fmt.Sprintf("CPU pressure %.0f%% (share of the time some task waited for a CPU)", 100*p.Share)
}
