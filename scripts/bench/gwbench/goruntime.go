package gwbench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// GoRuntime is what a Go server's Prometheus endpoint says of its memory:
// it splits the RSS per connection into goroutine stacks and heap.
type GoRuntime struct {
	Goroutines   float64 `json:"goroutines"`
	HeapInuseKB  float64 `json:"heapInuseKB"`
	StackInuseKB float64 `json:"stackInuseKB"`
}

// readGoRuntime scrapes the go_* gauges of the default Go collector.
func readGoRuntime(ctx context.Context, url string) (*GoRuntime, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: HTTP %d", url, res.StatusCode)
	}
	g := &GoRuntime{}
	fields := map[string]*float64{
		"go_goroutines":                 &g.Goroutines,
		"go_memstats_heap_inuse_bytes":  &g.HeapInuseKB,
		"go_memstats_stack_inuse_bytes": &g.StackInuseKB,
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if dst := fields[name]; ok && dst != nil {
			if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
				*dst = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	g.HeapInuseKB /= 1024
	g.StackInuseKB /= 1024
	return g, nil
}
