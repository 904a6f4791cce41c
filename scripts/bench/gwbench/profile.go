package gwbench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// profiler fetches pprof profiles of the server into a directory while the
// phases run; the zero value (no URL) does nothing.
type profiler struct {
	url string // base URL of net/http/pprof, e.g. http://127.0.0.1:28085/debug/pprof
	dir string
	wg  sync.WaitGroup
	mu  sync.Mutex
	err error
}

// cpu starts a CPU profile of the next d in the background.
func (p *profiler) cpu(ctx context.Context, name string, d time.Duration) {
	if p.url == "" || d < time.Second {
		return
	}
	p.wg.Go(func() {
		p.fetch(ctx, fmt.Sprintf("%s/profile?seconds=%d", p.url, int(d.Seconds())), name+".cpu.pprof", d+30*time.Second)
	})
}

// heap saves a heap profile now.
func (p *profiler) heap(ctx context.Context, name string) {
	if p.url == "" {
		return
	}
	p.fetch(ctx, p.url+"/heap", name+".heap.pprof", 30*time.Second)
}

// wait waits for the profiles under way and returns the first failure.
func (p *profiler) wait() error {
	p.wg.Wait()
	return p.err
}

func (p *profiler) fetch(ctx context.Context, url, file string, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d", res.StatusCode)
		}
		f, err := os.Create(filepath.Join(p.dir, file))
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, res.Body); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}()
	if err != nil {
		p.mu.Lock()
		if p.err == nil {
			p.err = fmt.Errorf("profile %s: %w", file, err)
		}
		p.mu.Unlock()
	}
}
