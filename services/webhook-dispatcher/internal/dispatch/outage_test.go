package dispatch

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// A failure repeated many times in a row is logged once when it starts and
// once when it ends, not once per try.
func TestARepeatedFailureIsLoggedWhenItStartsAndWhenItEnds(t *testing.T) {
	var buf bytes.Buffer
	o := outage{what: "claim due deliveries", log: slog.New(slog.NewTextHandler(&buf, nil))}
	o.ok() // nothing to report
	for range 100 {
		o.failed(errors.New("connection refused"))
	}
	o.ok()
	o.ok()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "connection refused") ||
		!strings.Contains(lines[1], "level=INFO") || !strings.Contains(lines[1], "works again") {
		t.Fatalf("log:\n%s", buf.String())
	}
}
