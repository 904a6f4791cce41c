//go:build !linux

package netx

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// PortHolder names the process listening on TCP port, best-effort, with
// lsof (present on macOS); "" when it cannot tell.
func PortHolder(port int) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "lsof", "-nP", "-iTCP:"+strconv.Itoa(port), "-sTCP:LISTEN", "-Fpc").Output()
	if err != nil {
		return ""
	}
	var pid, cmd string
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "p") && pid == "":
			pid = line[1:]
		case strings.HasPrefix(line, "c") && cmd == "":
			cmd = line[1:]
		}
	}
	if pid == "" {
		return ""
	}
	return "pid " + pid + " (" + cmd + ")"
}
