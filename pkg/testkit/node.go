package testkit

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"
)

// NodeScript runs `node script` in dir for the end-to-end tests that drive a
// real npm client or receiver. The script reads commands on its stdin and
// writes one JSON object per line on its stdout; each line is given to
// onLine (from one goroutine) until the script exits. At cleanup stdin is
// closed, which tells the script to finish, and it is killed if it has not
// within 5 s.
func NodeScript(t testing.TB, dir, script string, onLine func([]byte)) io.Writer {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("the end-to-end tests need Node.js 20 or later on PATH")
	}
	cmd := exec.Command(node, script)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node %s: %v", script, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			onLine(sc.Bytes())
		}
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return stdin
}
