package check

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// repoRoot is the repository, two levels up from this package.
const repoRoot = "../.."

// binaries are the images the Dockerfile must make: one target per binary,
// named after it, built from the binary's module and main package.
var binaries = []struct{ name, module, pkg string }{
	{"notification-api", "services/notification-api", "./cmd/notification-api"},
	{"realtime-gateway", "services/realtime-gateway", "./cmd/realtime-gateway"},
	{"webhook-dispatcher", "services/webhook-dispatcher", "./cmd/webhook-dispatcher"},
	{"notifyd", "deploy/standalone", "./cmd/notifyd"},
}

// dockerfile is deploy/docker/Dockerfile as BuildKit reads it.
type dockerfile struct {
	stages   map[string]instructions.Stage
	metaArgs map[string]string // ARGs before the first FROM, with their defaults
}

func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "deploy/docker/Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("parser warning: %s", w.Short)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("instructions: %v", err)
	}
	d := dockerfile{stages: map[string]instructions.Stage{}, metaArgs: map[string]string{}}
	for _, s := range stages {
		if _, dup := d.stages[s.Name]; dup {
			t.Fatalf("two stages named %q", s.Name)
		}
		d.stages[s.Name] = s
	}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			d.metaArgs[kv.Key] = kv.ValueString()
		}
	}
	return d
}

// commands returns the stage's commands of type T.
func commands[T instructions.Command](s instructions.Stage) []T {
	var out []T
	for _, c := range s.Commands {
		if v, ok := c.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// env returns the environment a RUN at the end of stage name sees, as
// BuildKit makes it: the ENVs of the stages it is built FROM (their ARGs stay
// in their stage), then its own ARGs (defaults overridden by buildArgs) and
// ENVs, each expanded with what came before.
func (d dockerfile) env(t *testing.T, name string, buildArgs map[string]string) map[string]string {
	t.Helper()
	vars, _ := d.stageEnv(t, name, buildArgs)
	return vars
}

// stageEnv returns the environment at the end of stage name and the part of
// it that later stages inherit (its ENVs and those it inherited).
func (d dockerfile) stageEnv(t *testing.T, name string, buildArgs map[string]string) (vars, inherited map[string]string) {
	t.Helper()
	s, ok := d.stages[name]
	if !ok {
		t.Fatalf("no stage %q", name)
	}
	vars, inherited = map[string]string{}, map[string]string{}
	if _, isStage := d.stages[s.BaseName]; isStage {
		_, base := d.stageEnv(t, s.BaseName, buildArgs)
		for k, v := range base {
			vars[k], inherited[k] = v, v
		}
	}
	lex := shell.NewLex('\\')
	expand := func(word string) string {
		var kv []string
		for k, v := range vars {
			kv = append(kv, k+"="+v)
		}
		out, _, err := lex.ProcessWord(word, shell.EnvsFromSlice(kv))
		if err != nil {
			t.Fatalf("stage %s: expand %q: %v", name, word, err)
		}
		return out
	}
	for _, c := range s.Commands {
		switch c := c.(type) {
		case *instructions.ArgCommand:
			for _, a := range c.Args {
				v, given := buildArgs[a.Key]
				if !given {
					v = expand(a.ValueString())
				}
				vars[a.Key] = v
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				v := expand(kv.Value)
				vars[kv.Key], inherited[kv.Key] = v, v
			}
		}
	}
	return vars, inherited
}

// goBuild returns the one RUN command of build-<name>, which must run go build.
func (d dockerfile) goBuild(t *testing.T, name string) string {
	t.Helper()
	s, ok := d.stages["build-"+name]
	if !ok {
		t.Fatalf("no stage build-%s", name)
	}
	runs := commands[*instructions.RunCommand](s)
	if len(runs) != 1 || !runs[0].PrependShell || len(runs[0].CmdLine) != 1 {
		t.Fatalf("stage build-%s: want one shell-form RUN, got %d", name, len(runs))
	}
	return runs[0].CmdLine[0]
}

func TestDockerfileTargetsRunTheirOwnBinaryAsANonRootUser(t *testing.T) {
	d := parseDockerfile(t)
	runtime := d.metaArgs["RUNTIME_IMAGE"]
	if !strings.HasPrefix(runtime, "gcr.io/distroless/static") {
		t.Errorf("RUNTIME_IMAGE %q: want distroless static (no shell, no package manager)", runtime)
	}
	for _, b := range binaries {
		t.Run(b.name, func(t *testing.T) {
			s, ok := d.stages[b.name]
			if !ok {
				t.Fatalf("no target %q", b.name)
			}
			if s.BaseName != "${RUNTIME_IMAGE}" {
				t.Errorf("target %s is FROM %q, want ${RUNTIME_IMAGE}", b.name, s.BaseName)
			}
			if _, err := os.Stat(filepath.Join(repoRoot, b.module, b.pkg, "main.go")); err != nil {
				t.Errorf("the main package it builds: %v", err)
			}

			// The binary: built in build-<name> from its module, copied
			// from there, and the entry point.
			build := d.goBuild(t, b.name)
			for _, want := range []string{"cd " + b.module + " && ", "go build ", `-ldflags "$LDFLAGS"`, "-o /out/" + b.name + " ", " " + b.pkg} {
				if !strings.Contains(build+" ", want) {
					t.Errorf("build-%s runs %q: missing %q", b.name, build, want)
				}
			}
			bin := "/usr/local/bin/" + b.name
			copied := false
			for _, c := range commands[*instructions.CopyCommand](s) {
				if c.DestPath == bin {
					copied = true
					if c.From != "build-"+b.name || len(c.SourcePaths) != 1 || c.SourcePaths[0] != "/out/"+b.name {
						t.Errorf("COPY to %s takes %v from %q, want /out/%s from build-%s", bin, c.SourcePaths, c.From, b.name, b.name)
					}
				}
			}
			if !copied {
				t.Errorf("nothing is copied to %s", bin)
			}
			eps := commands[*instructions.EntrypointCommand](s)
			if len(eps) != 1 || eps[0].PrependShell || len(eps[0].CmdLine) != 1 || eps[0].CmdLine[0] != bin {
				t.Errorf("ENTRYPOINT: want exactly one, exec form [%q]", bin)
			}

			// A numeric user and group other than root, so that
			// Kubernetes' runAsNonRoot can check it without /etc/passwd.
			users := commands[*instructions.UserCommand](s)
			if len(users) == 0 {
				t.Fatal("no USER: the image would run as root")
			}
			user := users[len(users)-1].User
			for i, id := range strings.SplitN(user, ":", 2) {
				n, err := strconv.Atoi(id)
				if err != nil || n == 0 {
					t.Errorf("USER %q: part %d is %q, want a non-zero number", user, i+1, id)
				}
			}
		})
	}
}

// TestDockerfileBuildsStampedBinariesFromItsContext runs each build
// stage's go build command, with the stage's environment, in a copy of the
// build context that .dockerignore lets through, the way BuildKit would in
// the golang image; then asks each binary its version. No Docker engine runs
// here: this is the part of an image build that can go wrong in our hands.
func TestDockerfileBuildsStampedBinariesFromItsContext(t *testing.T) {
	d := parseDockerfile(t)
	context := buildContext(t)
	out := t.TempDir()
	args := map[string]string{"VERSION": "v9.8.7-check", "COMMIT": "0123456789abcdef0123456789abcdef01234567"}
	for _, b := range binaries {
		t.Run(b.name, func(t *testing.T) {
			cmdline := strings.ReplaceAll(d.goBuild(t, b.name), "/out/", out+"/")
			cmd := exec.Command("sh", "-c", cmdline)
			cmd.Dir = context
			cmd.Env = os.Environ()
			for k, v := range d.env(t, "build-"+b.name, args) {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			if msg, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", cmdline, err, msg)
			}
			got, err := exec.Command(filepath.Join(out, b.name), "--version").CombinedOutput()
			if err != nil {
				t.Fatalf("%s --version: %v\n%s", b.name, err, got)
			}
			want := fmt.Sprintf("%s %s (commit %s, go", b.name, args["VERSION"], args["COMMIT"])
			if !strings.HasPrefix(string(got), want) {
				t.Errorf("%s --version printed %q, want it to start with %q", b.name, got, want)
			}
		})
	}
}

// buildContext copies the files of the repository that .dockerignore lets
// into the build context to a temporary directory, deciding as Docker does
// (the same pattern matcher; an excluded directory is entered only when a
// "!" pattern could let something under it back in).
func buildContext(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil || path == root {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		excluded, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			return err
		}
		if e.IsDir() {
			if excluded && !mayReinclude(pm, rel) {
				return filepath.SkipDir
			}
			return nil
		}
		if excluded || !e.Type().IsRegular() {
			return nil
		}
		return copyFile(path, filepath.Join(dst, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func mayReinclude(pm *patternmatcher.PatternMatcher, dir string) bool {
	for _, p := range pm.Patterns() {
		if p.Exclusion() && strings.HasPrefix(p.String()+"/", dir+"/") {
			return true
		}
	}
	return false
}

func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
