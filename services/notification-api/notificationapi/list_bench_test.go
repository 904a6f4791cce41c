package notificationapi_test

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkList is the whole list route in one process: the HTTP server,
// JWT verification, the query on PostgreSQL and the JSON encoding (and the
// client, which a CPU profile tells apart). The cost per request of the
// service alone is measured by `notifybench list` (docs/napi-bench.md).
func BenchmarkList(b *testing.B) {
	h := start(b)
	h.seed("bench", 200)
	tok := token(b, "bench")
	req, err := http.NewRequest("GET", h.base+"/api/v1/notifications?limit=20", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
