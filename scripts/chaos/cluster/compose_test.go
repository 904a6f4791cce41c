package cluster

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads deploy/compose/compose.yaml with the loader of
// `docker compose config` (schema, merge keys, interpolation), env
// standing for deploy/compose/.env.
func loadCompose(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	path, err := filepath.Abs("../../../deploy/compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{path}, cli.WithEnv(environ), cli.WithInterpolation(true), cli.WithName("notify"))
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(context.Background())
}

var composeSecrets = map[string]string{"JWT_SECRET": "jwt", "WEBHOOK_SECRETS_KEYS": "k1:key", "POSTGRES_PASSWORD": "pw"}

func TestComposeRefusesToStartWithoutEachSecretAndNamesIt(t *testing.T) {
	for name := range composeSecrets {
		env := map[string]string{}
		for k, v := range composeSecrets {
			if k != name {
				env[k] = v
			}
		}
		_, err := loadCompose(t, env)
		if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "deploy/compose/.env") {
			t.Errorf("without %s: %v, want an error naming it and the .env file", name, err)
		}
	}
}

// Compose runs what `make cluster` runs: 3 clustered NATS nodes, 2 replicas
// of each service on all three with STREAM_REPLICAS=3, and HAProxy with the
// same configuration and variables, the only entry besides the producers'
// NATS port.
func TestComposeRunsTheTopologyOfMakeCluster(t *testing.T) {
	p, err := loadCompose(t, composeSecrets)
	if err != nil {
		t.Fatal(err)
	}
	var nodes []string
	for i := 1; i <= 3; i++ {
		nodes = append(nodes, "nats://nats-"+string(rune('0'+i))+":4222")
	}
	natsURL := strings.Join(nodes, ",")
	for i := 1; i <= 3; i++ {
		n, err := p.GetService("nats-" + string(rune('0'+i)))
		if err != nil {
			t.Fatal(err)
		}
		cmd := strings.Join(n.Command, " ")
		if !strings.Contains(cmd, "--jetstream") || !strings.Contains(cmd, "--cluster_name notify") || strings.Count(cmd, ":6222") != 3 {
			t.Errorf("%s: %q is not a JetStream node routed to the two others", n.Name, cmd)
		}
	}
	proxy, err := p.GetService("proxy")
	if err != nil {
		t.Fatal(err)
	}
	if len(proxy.Volumes) != 1 || filepath.Base(proxy.Volumes[0].Source) != filepath.Base(ProxyConfig) || proxy.Volumes[0].Target != "/usr/local/etc/haproxy/haproxy.cfg" {
		t.Errorf("the proxy does not run %s: %+v", ProxyConfig, proxy.Volumes)
	}
	cfg, err := os.ReadFile(filepath.Join("../../..", ProxyConfig))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range ServiceNames {
		for i := 1; i <= 2; i++ {
			svc := name + "-" + string(rune('0'+i))
			s, err := p.GetService(svc)
			if err != nil {
				t.Fatal(err)
			}
			if s.Build == nil || s.Build.Target != name || s.Build.Dockerfile != "deploy/docker/Dockerfile" {
				t.Errorf("%s is not built from the %s target of deploy/docker/Dockerfile: %+v", svc, name, s.Build)
			}
			if v := s.Environment["STREAM_REPLICAS"]; v == nil || *v != "3" {
				t.Errorf("%s: STREAM_REPLICAS %v, want 3", svc, v)
			}
			if v := s.Environment["NATS_URL"]; v == nil || *v != natsURL {
				t.Errorf("%s: NATS_URL %v, want %s", svc, v, natsURL)
			}
			if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") || len(s.Ports) != 0 {
				t.Errorf("%s: read-only %v, cap_drop %v, ports %v: want a read-only root, no capabilities, nothing published", svc, s.ReadOnly, s.CapDrop, s.Ports)
			}
			v := ProxyServerVar(name, i)
			if got := proxy.Environment[v]; got == nil || *got != svc+":8080" {
				t.Errorf("proxy: %s=%v, want %s:8080", v, got, svc)
			}
			if !strings.Contains(string(cfg), `"${`+v+`}"`) {
				t.Errorf("%s does not use %s", ProxyConfig, v)
			}
		}
	}
	for _, s := range p.Services {
		if len(s.Ports) > 0 && s.Name != "proxy" && s.Name != "nats-1" {
			t.Errorf("%s publishes %v: only the proxy and the producers' NATS port may", s.Name, s.Ports)
		}
	}
}
