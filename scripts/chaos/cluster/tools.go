package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
)

// Build runs `make build` in the repository: bin/notification-api,
// bin/realtime-gateway, bin/webhook-dispatcher (and the other binaries).
func Build(ctx context.Context, root string) error {
	cmd := exec.CommandContext(ctx, "make", "build")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("make build: %w", err)
	}
	return nil
}

// NATSServer returns the path of nats-server at the version pkg/go.mod
// requires, installing it into .tools/ the first time.
func NATSServer(ctx context.Context, root string) (string, error) {
	gomod, err := os.ReadFile(filepath.Join(root, "pkg", "go.mod"))
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/nats-io/nats-server/v2 (v\S+)`).FindSubmatch(gomod)
	if m == nil {
		return "", fmt.Errorf("no nats-server version in pkg/go.mod")
	}
	version := string(m[1])
	tools := filepath.Join(root, ".tools")
	path := filepath.Join(tools, "nats-server-"+version)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	fmt.Fprintf(os.Stderr, "==> installing nats-server %s into .tools/\n", version)
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/nats-io/nats-server/v2@"+version)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOBIN="+tools, "GOWORK=off")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("install nats-server %s: %w", version, err)
	}
	if err := os.Rename(filepath.Join(tools, "nats-server"), path); err != nil {
		return "", err
	}
	return path, nil
}
