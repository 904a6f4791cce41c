package netx

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// PortHolder names the process listening on TCP port, best-effort: from
// /proc/net/tcp{,6} (the socket's inode) and /proc/*/fd (who has it open).
// It answers "" when no listener is found, and says so when the holder
// belongs to a user whose processes we cannot read.
func PortHolder(port int) string {
	inode := listeningInode(port)
	if inode == "" {
		return ""
	}
	target := "socket:[" + inode + "]"
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, proc := range procs {
		fds, err := os.ReadDir(filepath.Join(proc, "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if link, err := os.Readlink(filepath.Join(proc, "fd", fd.Name())); err == nil && link == target {
				return describe(proc)
			}
		}
	}
	return "a process of another user (as root, 'ss -ltnp' shows it)"
}

func listeningInode(port int) string {
	const listen = "0A"
	hexPort := fmt.Sprintf("%04X", port)
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != listen {
				continue
			}
			if _, p, ok := strings.Cut(fields[1], ":"); ok && p == hexPort && fields[9] != "0" {
				f.Close()
				return fields[9]
			}
		}
		f.Close()
	}
	return ""
}

func describe(proc string) string {
	pid := filepath.Base(proc)
	cmd, err := os.ReadFile(filepath.Join(proc, "cmdline"))
	args := strings.Fields(strings.ReplaceAll(string(cmd), "\x00", " "))
	if err != nil || len(args) == 0 {
		if comm, err := os.ReadFile(filepath.Join(proc, "comm")); err == nil {
			args = []string{strings.TrimSpace(string(comm))}
		}
	}
	if len(args) > 0 {
		args[0] = filepath.Base(args[0])
	}
	line := strings.Join(args, " ")
	if len(line) > 120 {
		line = line[:120] + "…"
	}
	return "pid " + pid + " (" + line + ")"
}
