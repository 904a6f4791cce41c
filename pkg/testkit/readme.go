package testkit

import (
	"os"
	"strings"
	"testing"
)

// Markers around the README's walkthrough: the shell blocks between them
// are what the walkthrough tests run (notifyd's, and the chaos module's
// through the proxy of `make cluster`).
const (
	WalkthroughBegin = "<!-- walkthrough: tested by deploy/standalone/notifyd/walkthrough_test.go and scripts/chaos/suite/walkthrough_test.go -->"
	WalkthroughEnd   = "<!-- /walkthrough -->"
)

// READMEWalkthrough returns the ```sh blocks of the README at path
// between WalkthroughBegin and WalkthroughEnd, as one script.
func READMEWalkthrough(t testing.TB, path string) string {
	t.Helper()
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), WalkthroughBegin)
	section, _, ok2 := strings.Cut(rest, WalkthroughEnd)
	if !ok || !ok2 {
		t.Fatalf("%s has no %q … %q section", path, WalkthroughBegin, WalkthroughEnd)
	}
	var script strings.Builder
	in := false
	for _, line := range strings.Split(section, "\n") {
		switch {
		case strings.HasPrefix(line, "```sh"):
			in = true
		case strings.HasPrefix(line, "```"):
			in = false
		case in:
			script.WriteString(line + "\n")
		}
	}
	if script.Len() == 0 {
		t.Fatalf("the walkthrough section of %s has no ```sh block", path)
	}
	return script.String()
}
