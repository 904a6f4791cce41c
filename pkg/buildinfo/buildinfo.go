// Package buildinfo holds the version and commit a binary was built from,
// stamped in by the linker (the Makefile and deploy/docker/Dockerfile pass
// -ldflags "-X <this package>.Version=… -X <this package>.Commit=…"), and
// shows them the two ways an operator asks: `<binary> --version`, and the
// notify_build_info metric that every service exports through pkg/app.
package buildinfo

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Stamped by the linker; a plain `go build` leaves them empty and Get falls
// back to what the Go toolchain recorded.
var (
	Version string
	Commit  string
)

// Info is what a binary was built from.
type Info struct {
	Version   string // a release ("v1.4.0") or `git describe` output; "dev" when unknown
	Commit    string // the full commit hash; "unknown" when not recorded
	GoVersion string
}

// Get returns the stamped version and commit, else the module version and
// VCS revision the toolchain embedded (go install …@version, or a build in a
// git checkout without -buildvcs=false), else "dev" and "unknown".
func Get() Info {
	i := Info{Version: Version, Commit: Commit, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && i.Commit == "" {
				i.Commit = s.Value
			}
		}
	}
	if i.Version == "" {
		i.Version = "dev"
	}
	if i.Commit == "" {
		i.Commit = "unknown"
	}
	return i
}

// String is the one line `--version` prints.
func (i Info) String() string {
	return fmt.Sprintf("%s (commit %s, %s)", i.Version, i.Commit, i.GoVersion)
}

// VersionRequested reports whether args ask for the version: a first
// argument of --version or -version.
func VersionRequested(args []string) bool {
	return len(args) > 0 && (args[0] == "--version" || args[0] == "-version")
}

// PrintVersion writes "<name> <version> (commit <commit>, <go version>)".
func PrintVersion(w io.Writer, name string) {
	fmt.Fprintln(w, name, Get())
}

// MetricName is the gauge Register exports.
const MetricName = "notify_build_info"

// Register adds the constant gauge notify_build_info{service, version,
// commit, goversion} = 1, so that dashboards can tell which build each
// replica runs (and join it onto other series by instance).
func Register(reg prometheus.Registerer, service string) {
	i := Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: MetricName,
		Help: "Always 1; its labels name the service and the version, commit and Go version it was built from.",
		ConstLabels: prometheus.Labels{
			"service": service, "version": i.Version, "commit": i.Commit, "goversion": i.GoVersion,
		},
	})
	g.Set(1)
	reg.MustRegister(g)
}
