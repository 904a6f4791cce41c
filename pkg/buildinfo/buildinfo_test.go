package buildinfo

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// stamp sets Version and Commit as the linker would, for one test.
func stamp(t *testing.T, version, commit string) {
	t.Helper()
	oldV, oldC := Version, Commit
	Version, Commit = version, commit
	t.Cleanup(func() { Version, Commit = oldV, oldC })
}

func TestAStampedBuildPrintsItsVersionCommitAndGo(t *testing.T) {
	stamp(t, "v1.4.0", "0123456789abcdef0123456789abcdef01234567")
	var out bytes.Buffer
	PrintVersion(&out, "notification-api")
	want := "notification-api v1.4.0 (commit 0123456789abcdef0123456789abcdef01234567, " + runtime.Version() + ")\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

func TestAnUnstampedBuildSaysDevAndUnknown(t *testing.T) {
	stamp(t, "", "")
	// go test builds with -buildvcs=false here (GOFLAGS) or records no
	// revision for a test binary, and its main module version is (devel).
	i := Get()
	if i.Version != "dev" {
		t.Errorf("version %q, want dev", i.Version)
	}
	if i.Commit == "" {
		t.Error("empty commit; want unknown or the recorded revision")
	}
}

func TestVersionIsRequestedByTheFirstArgumentOnly(t *testing.T) {
	for args, want := range map[string]bool{
		"--version": true, "-version": true, "": false, "migrate": false, "migrate --version": false, "--versions": false,
	} {
		if got := VersionRequested(strings.Fields(args)); got != want {
			t.Errorf("%q: %v, want %v", args, got, want)
		}
	}
}

func TestTheMetricIsOneWithTheBuildInItsLabels(t *testing.T) {
	stamp(t, "v2.0.0-rc.1", "abc123")
	reg := prometheus.NewRegistry()
	Register(reg, "realtime-gateway")
	want := `
# HELP notify_build_info Always 1; its labels name the service and the version, commit and Go version it was built from.
# TYPE notify_build_info gauge
notify_build_info{commit="abc123",goversion="` + runtime.Version() + `",service="realtime-gateway",version="v2.0.0-rc.1"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), MetricName); err != nil {
		t.Error(err)
	}
}
