package bench

import (
	"os"
	"strings"
)

// loadAverage is the 1, 5 and 15 minute load of the machine, or "n/a": the
// machine is shared, so every figure is printed with the load it ran under.
func loadAverage() string {
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
