package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/cmd/cli"
)

func runCmd(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = cli.Run(context.Background(), "notifybench", usage, benchmarks, args, cli.Stdio{In: strings.NewReader(""), Out: &out, Err: &errOut})
	return code, out.String(), errOut.String()
}

func TestEveryBenchmarkPrintsItsHelpWithoutTheSecretsItReads(t *testing.T) {
	hidden := map[string]string{
		"JWT_SECRET":   "jwt-secret-value-that-must-stay-hidden-0123456789",
		"DATABASE_URL": "postgres://app:db-password-hidden@db.internal:5432/notify",
		"NATS_URL":     "nats://producer:nats-password-hidden@nats.internal:4222",
	}
	for name, v := range hidden {
		t.Setenv(name, v)
	}
	for _, cmd := range [][]string{{}, {"ingest"}, {"list"}, {"gateway"}, {"gateway-worker"}, {"gateway-report"}, {"centrifugo-config"}} {
		args := append(append([]string{}, cmd...), "-h")
		code, out, errOut := runCmd(t, args...)
		if code != 0 || errOut != "" || !strings.HasPrefix(out, "usage: notifybench") || !strings.Contains(out, "examples:\n  notifybench ") {
			t.Errorf("notifybench %s: exit %d, stderr %q; want exit 0 and a usage with examples on stdout:\n%s", strings.Join(args, " "), code, errOut, out)
		}
		for name, v := range hidden {
			if strings.Contains(out, v) || strings.Contains(out, "password-hidden") {
				t.Errorf("notifybench %s: help shows the value of $%s", strings.Join(args, " "), name)
			}
		}
		if strings.Contains(out, auth.DevSecret) {
			t.Errorf("notifybench %s: help shows the development secret", strings.Join(args, " "))
		}
	}
}

func TestAnUnknownBenchmarkOrFlagIsAUsageError(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"ingest", "-nope"}, {"gateway-report"}, {"list", "stray"}} {
		code, out, errOut := runCmd(t, args...)
		if code != 2 || out != "" || errOut == "" {
			t.Errorf("notifybench %s: exit %d, stdout %q, stderr %q; want exit 2 and the problem on stderr", strings.Join(args, " "), code, out, errOut)
		}
	}
}

// -sync: each stage of a phase is announced on stdout and waits for a line
// on stdin; a script that stops answering fails the run.
func TestSyncHookAnnouncesEachStageAndWaitsForAnAnswer(t *testing.T) {
	var out bytes.Buffer
	hook := syncHook(cli.Stdio{In: strings.NewReader("\n\n"), Out: &out})
	for _, stage := range []string{"start", "end"} {
		if err := hook("pipeline", stage); err != nil {
			t.Fatalf("%s: %v", stage, err)
		}
	}
	if got, want := out.String(), "phase pipeline start\nphase pipeline end\n"; got != want {
		t.Fatalf("stdout %q, want %q", got, want)
	}
	if err := hook("pipeline", "start"); err == nil || !strings.Contains(err.Error(), "no answer on stdin") {
		t.Fatalf("without an answer: %v, want an error", err)
	}
}
