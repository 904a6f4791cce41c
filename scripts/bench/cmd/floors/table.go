package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// measure is one row of a table: ops operations in elapsed wall time, and
// the CPU time each party of the table spent on them.
type measure struct {
	name    string
	ops     int
	elapsed time.Duration
	cpu     []time.Duration // per party, in the table's order
	known   []bool          // false: the party's CPU could not be read
	sys     time.Duration   // the system part of the first party's CPU
	extra   []string        // the table's extra columns
	derived bool            // computed from other rows: no ops, seconds or rate of its own
}

// table prints measures with one "µs/op" column per party.
type table struct {
	title   string
	parties []string
	extra   []string
	rows    []measure
}

// perOp is d per operation, in microseconds with one decimal; "n/a" when
// unknown or there was no operation.
func perOp(d time.Duration, n int, known bool) string {
	if !known || n <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", float64(d)/float64(time.Microsecond)/float64(n))
}

// rate is n per second of d.
func rate(n int, d time.Duration) string {
	if d <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f", float64(n)/d.Seconds())
}

// share is part of whole in percent, or "n/a".
func share(part, whole time.Duration) string {
	if whole <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(part)/float64(whole))
}

func (t *table) add(m measure) { t.rows = append(t.rows, m) }

func (t *table) print(w io.Writer) {
	fmt.Fprintln(w, t.title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"", "ops", "seconds"}
	for _, p := range t.parties {
		head = append(head, p+" µs/op")
	}
	head = append(head, t.parties[0]+" sys", "ops/s")
	head = append(head, t.extra...)
	// Right-aligned columns, but the names padded to one width: aligned left.
	width := 0
	for _, m := range t.rows {
		width = max(width, utf8.RuneCountInString(m.name))
	}
	head[0] = fmt.Sprintf("%-*s", width, "")
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, m := range t.rows {
		cols := []string{fmt.Sprintf("%-*s", width, m.name), fmt.Sprint(m.ops), fmt.Sprintf("%.2f", m.elapsed.Seconds())}
		if m.derived {
			cols[1], cols[2] = "", ""
		}
		for i := range t.parties {
			cols = append(cols, perOp(m.cpu[i], m.ops, m.known[i]))
		}
		sysShare, ops := share(m.sys, m.cpu[0]), rate(m.ops, m.elapsed)
		if m.derived {
			ops = ""
		}
		cols = append(cols, sysShare, ops)
		cols = append(cols, m.extra...)
		for len(cols) < len(head) {
			cols = append(cols, "")
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t")+"\t")
	}
	_ = tw.Flush()
}

// sum is the derived row adding up rows, all per operation: each row's CPU
// per op is scaled to ops operations.
func sum(name string, ops int, rows ...measure) measure {
	s := measure{name: name, ops: ops, derived: true}
	for i, r := range rows {
		if i == 0 {
			s.cpu = make([]time.Duration, len(r.cpu))
			s.known = make([]bool, len(r.cpu))
			for p := range s.known {
				s.known[p] = true
			}
		}
		scale := float64(ops) / float64(max(r.ops, 1))
		for p := range r.cpu {
			s.cpu[p] += time.Duration(float64(r.cpu[p]) * scale)
			s.known[p] = s.known[p] && r.known[p]
		}
		s.sys += time.Duration(float64(r.sys) * scale)
	}
	return s
}

func logf(w io.Writer, format string, a ...any) {
	if w != nil {
		fmt.Fprintf(w, "  "+format+"\n", a...)
	}
}
