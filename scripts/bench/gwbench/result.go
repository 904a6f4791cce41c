package gwbench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Result is what one measurement of one server found.
type Result struct {
	Label         string           `json:"label"`
	URL           string           `json:"url"`       // of each process, comma-separated
	Processes     int              `json:"processes"` // of the server
	Clients       int              `json:"clients"`
	Workers       int              `json:"workers"`
	Rate          int              `json:"rate"`
	StartedAt     time.Time        `json:"startedAt"`
	LoadAvgBefore string           `json:"loadAvgBefore"`
	LoadAvgAfter  string           `json:"loadAvgAfter"`
	Connect       ConnectResult    `json:"connect"`
	Memory        MemoryResult     `json:"memory"`
	Phases        []DeliveryResult `json:"phases"`
	Disconnects   int64            `json:"disconnects"` // connections the server ended during the run
}

// ConnectResult is the connection storm.
type ConnectResult struct {
	Attempted   int     `json:"attempted"`
	Connected   int     `json:"connected"` // on the first attempt
	Failed      int     `json:"failed"`    // on the first attempt
	Retried     int     `json:"retried"`   // connected on the second attempt
	StillFailed int     `json:"stillFailed"`
	Seconds     float64 `json:"seconds"`   // first handshake start to last first-attempt success
	PerSecond   float64 `json:"perSecond"` // first-attempt successes per second

	HandshakeP50Ms float64           `json:"handshakeP50Ms"`
	HandshakeP99Ms float64           `json:"handshakeP99Ms"`
	HandshakeMaxMs float64           `json:"handshakeMaxMs"`
	Errors         map[string]int    `json:"errors,omitempty"`
	Examples       map[string]string `json:"examples,omitempty"`
}

// MemoryResult is the server's resident memory.
type MemoryResult struct {
	BaselineKB    int64   `json:"baselineKB"` // before any client connected
	IdleKB        int64   `json:"idleKB"`     // every client connected and idle
	IdlePerConnKB float64 `json:"idlePerConnKB"`
	LoadKB        int64   `json:"loadKB"` // highest sample during the delivery phases
	LoadPerConnKB float64 `json:"loadPerConnKB"`
	// GoPerConn splits the idle memory of a Go server per connection, from
	// its runtime metrics (nil for other servers).
	GoPerConn *GoRuntime `json:"goPerConn,omitempty"`
}

// DeliveryResult is one delivery phase.
type DeliveryResult struct {
	Phase            string  `json:"phase"`
	Rate             int     `json:"rate"`
	Seconds          float64 `json:"seconds"`
	PublishSeconds   float64 `json:"publishSeconds"` // how long publishing really took
	Published        int64   `json:"published"`      // acknowledged by the stream
	PublishErrors    int64   `json:"publishErrors"`
	PublishError     string  `json:"publishError,omitempty"`
	Received         int64   `json:"received"`
	Lost             int64   `json:"lost"`
	Duplicates       int64   `json:"duplicates"`
	Disconnects      int64   `json:"disconnects"`
	P50Ms            float64 `json:"p50Ms"`
	P90Ms            float64 `json:"p90Ms"`
	P99Ms            float64 `json:"p99Ms"`
	P999Ms           float64 `json:"p999Ms"`
	MaxMs            float64 `json:"maxMs"`
	ServerCPUPercent float64 `json:"serverCpuPercent"` // of one core, while publishing
	// ServerCPUSeconds is the server's CPU time from the first publish to
	// the last delivery (or the end of the drain).
	ServerCPUSeconds float64 `json:"serverCpuSeconds"`
	// ServerWaitPercent is how long the server's threads waited, runnable,
	// for a CPU while publishing, in % of the wall time (summed over
	// threads): the machine's share of the latency.
	ServerWaitPercent float64 `json:"serverWaitPercent"`
	MaxRSSKB          int64   `json:"maxRssKB"`
	LoadPerConnKB     float64 `json:"loadPerConnKB"`
}

// CPUSecondsPerMillion is the server's CPU time per million messages
// delivered: a cost that does not depend on how busy the machine was.
func (d *DeliveryResult) CPUSecondsPerMillion() float64 {
	if d.Received == 0 {
		return 0
	}
	return d.ServerCPUSeconds / float64(d.Received) * 1e6
}

// Phase returns the named delivery phase, or nil.
func (r *Result) Phase(name string) *DeliveryResult {
	for i := range r.Phases {
		if r.Phases[i].Phase == name {
			return &r.Phases[i]
		}
	}
	return nil
}

// WriteFile saves the result as JSON.
func (r *Result) WriteFile(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadResult loads a result saved by WriteFile.
func ReadResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// row is one line of the side-by-side table: a label and how to read the
// figure from a result ("" when the result has no such figure).
type row struct {
	label string
	value func(r *Result) string
}

func phaseRow(phase, label string, f func(d *DeliveryResult) string) row {
	return row{label: label, value: func(r *Result) string {
		if d := r.Phase(phase); d != nil {
			return f(d)
		}
		return "–"
	}}
}

func ms(v float64) string { return fmt.Sprintf("%.2f ms", v) }

func tableRows() []row {
	rows := []row{
		{"server processes", func(r *Result) string { return fmt.Sprint(max(r.Processes, 1)) }},
		{"clients (WebSocket)", func(r *Result) string { return fmt.Sprintf("%d in %d processes", r.Clients, r.Workers) }},
		{"connections/s (first attempt)", func(r *Result) string { return fmt.Sprintf("%.0f", r.Connect.PerSecond) }},
		{"connected / failed (first attempt)", func(r *Result) string {
			return fmt.Sprintf("%d / %d", r.Connect.Connected, r.Connect.Failed)
		}},
		{"failures by kind", func(r *Result) string { return kinds(r.Connect.Errors) }},
		{"handshake p50 / p99", func(r *Result) string {
			return ms(r.Connect.HandshakeP50Ms) + " / " + ms(r.Connect.HandshakeP99Ms)
		}},
		{"RSS before clients", func(r *Result) string { return mb(r.Memory.BaselineKB) }},
		{"RSS idle, all connected", func(r *Result) string { return mb(r.Memory.IdleKB) }},
		{"**RSS per idle connection**", func(r *Result) string { return fmt.Sprintf("%.1f KB", r.Memory.IdlePerConnKB) }},
		{"**RSS per connection under load**", func(r *Result) string { return fmt.Sprintf("%.1f KB", r.Memory.LoadPerConnKB) }},
		{"idle, per connection: goroutines / stack / heap", func(r *Result) string {
			g := r.Memory.GoPerConn
			if g == nil {
				return "–"
			}
			return fmt.Sprintf("%.2f / %.1f KB / %.1f KB", g.Goroutines, g.StackInuseKB, g.HeapInuseKB)
		}},
	}
	for _, p := range []struct{ name, title string }{{PhaseFanout, "fan-out"}, {PhasePipeline, "pipeline"}} {
		rows = append(rows,
			phaseRow(p.name, p.title+": published (rate)", func(d *DeliveryResult) string {
				return fmt.Sprintf("%d (%.0f/s)", d.Published, float64(d.Published)/d.PublishSeconds)
			}),
			phaseRow(p.name, "**"+p.title+": p50 / p99**", func(d *DeliveryResult) string { return ms(d.P50Ms) + " / " + ms(d.P99Ms) }),
			phaseRow(p.name, p.title+": p99.9 / max", func(d *DeliveryResult) string { return ms(d.P999Ms) + " / " + ms(d.MaxMs) }),
			phaseRow(p.name, "**"+p.title+": lost / duplicated**", func(d *DeliveryResult) string {
				return fmt.Sprintf("%d / %d", d.Lost, d.Duplicates)
			}),
			phaseRow(p.name, p.title+": server CPU / waiting for a CPU", func(d *DeliveryResult) string {
				return fmt.Sprintf("%.0f%% / %.0f%%", d.ServerCPUPercent, d.ServerWaitPercent)
			}),
			phaseRow(p.name, "**"+p.title+": server CPU s per million delivered**", func(d *DeliveryResult) string {
				return fmt.Sprintf("%.1f s", d.CPUSecondsPerMillion())
			}),
		)
	}
	rows = append(rows,
		row{"connections dropped by the server", func(r *Result) string { return fmt.Sprint(r.Disconnects) }},
		row{"load average before → after", func(r *Result) string { return r.LoadAvgBefore + " → " + r.LoadAvgAfter }},
	)
	return rows
}

func mb(kb int64) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }

func kinds(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s: %d", k, v))
	}
	return strings.Join(parts, ", ")
}

// WriteTable prints the results side by side as a Markdown table.
func WriteTable(w io.Writer, results []*Result) error {
	var b strings.Builder
	b.WriteString("| |")
	for _, r := range results {
		b.WriteString(" " + r.Label + " |")
	}
	b.WriteString("\n|---|")
	for range results {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, row := range tableRows() {
		b.WriteString("| " + row.label + " |")
		for _, r := range results {
			b.WriteString(" " + row.value(r) + " |")
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Targets are what the Go gateway must achieve on its own; Verdict also
// compares it with each peer server measured in the same run.
type Targets struct {
	IdlePerConnKB float64
	ConnPerSecond float64
	FanoutP99Ms   float64
	PipelineP99Ms float64
}

// IssueTargets are the figures issues 4, 10 and 13 ask of the gateway.
func IssueTargets() Targets {
	return Targets{IdlePerConnKB: 8, ConnPerSecond: 3000, FanoutP99Ms: 5, PipelineP99Ms: 50}
}

// Verdict checks a result against the targets and against each peer
// measured in the same run (the Node.js reference, Centrifugo): connects
// at least as fast with a handshake p99 no higher, uses less memory per
// connection and less CPU per delivered message, and delivers with a p99
// no higher and no more lost. It returns one line per check.
func Verdict(r *Result, peers []*Result, t Targets) (lines []string, ok bool) {
	ok = true
	check := func(pass bool, format string, args ...any) {
		mark := "PASS"
		if !pass {
			mark, ok = "MISS", false
		}
		lines = append(lines, mark+"  "+fmt.Sprintf(format, args...))
	}
	check(r.Memory.IdlePerConnKB <= t.IdlePerConnKB, "RSS per idle connection %.1f KB (target <= %.0f KB)", r.Memory.IdlePerConnKB, t.IdlePerConnKB)
	check(r.Connect.PerSecond >= t.ConnPerSecond && r.Connect.Failed == 0,
		"%.0f connections/s with %d failing (target >= %.0f/s, none failing)", r.Connect.PerSecond, r.Connect.Failed, t.ConnPerSecond)
	for _, p := range []struct {
		name   string
		target float64
	}{{PhaseFanout, t.FanoutP99Ms}, {PhasePipeline, t.PipelineP99Ms}} {
		d := r.Phase(p.name)
		if d == nil {
			continue
		}
		check(d.P99Ms <= p.target && d.Lost == 0 && d.Duplicates == 0 && d.Published > 0,
			"%s p99 %.2f ms, %d lost, %d duplicated of %d (target p99 <= %.0f ms, none lost)", p.name, d.P99Ms, d.Lost, d.Duplicates, d.Published, p.target)
	}
	for _, ref := range peers {
		check(r.Connect.PerSecond >= ref.Connect.PerSecond, "connects at least as fast as %s (%.0f/s vs %.0f/s)", ref.Label, r.Connect.PerSecond, ref.Connect.PerSecond)
		check(r.Connect.HandshakeP99Ms <= ref.Connect.HandshakeP99Ms, "handshake p99 no higher than %s (%.2f ms vs %.2f ms)", ref.Label, r.Connect.HandshakeP99Ms, ref.Connect.HandshakeP99Ms)
		check(r.Memory.IdlePerConnKB < ref.Memory.IdlePerConnKB, "idle memory per connection below %s (%.1f KB vs %.1f KB)", ref.Label, r.Memory.IdlePerConnKB, ref.Memory.IdlePerConnKB)
		check(r.Memory.LoadPerConnKB < ref.Memory.LoadPerConnKB, "memory per connection under load below %s (%.1f KB vs %.1f KB)", ref.Label, r.Memory.LoadPerConnKB, ref.Memory.LoadPerConnKB)
		for _, name := range []string{PhaseFanout, PhasePipeline} {
			d, rd := r.Phase(name), ref.Phase(name)
			if d == nil || rd == nil {
				continue
			}
			check(d.P99Ms <= rd.P99Ms && d.Lost <= rd.Lost, "%s p99 no higher than %s (%.2f ms vs %.2f ms; lost %d vs %d)", name, ref.Label, d.P99Ms, rd.P99Ms, d.Lost, rd.Lost)
			check(d.CPUSecondsPerMillion() <= rd.CPUSecondsPerMillion(), "%s CPU per million delivered no more than %s (%.1f s vs %.1f s)", name, ref.Label, d.CPUSecondsPerMillion(), rd.CPUSecondsPerMillion())
		}
	}
	return lines, ok
}
