package suite

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/xpeditis/notify/pkg/webhook"
)

// receiver is the integrator's endpoint: it verifies every request's
// signatures with pkg/webhook, answers 200 to the good ones, and counts
// them per event id.
type receiver struct {
	secret string
	srv    *http.Server
	ln     net.Listener

	mu         sync.Mutex
	deliveries map[string]*delivery // by event id
	badSig     int
	total      int
}

// delivery is what the receiver saw of one event.
type delivery struct {
	ok       int       // requests answered 2xx
	first    time.Time // the first of them
	attempts []string  // X-Webhook-Attempt of each
}

func startReceiver(secret string) (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{secret: secret, ln: ln, deliveries: map[string]*delivery{}}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *receiver) URL() string { return "http://" + r.ln.Addr().String() + "/hook" }

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	now := time.Now()
	if err := webhook.Verify(r.secret, body, req.Header, now, 5*time.Minute); err != nil {
		r.mu.Lock()
		r.badSig++
		r.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var ev struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" {
		http.Error(w, "no event id", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	d := r.deliveries[ev.ID]
	if d == nil {
		d = &delivery{first: now}
		r.deliveries[ev.ID] = d
	}
	d.ok++
	d.attempts = append(d.attempts, req.Header.Get(webhook.HeaderAttempt))
	r.total++
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// snapshot copies what was received so far.
func (r *receiver) snapshot() (map[string]delivery, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]delivery, len(r.deliveries))
	for id, d := range r.deliveries {
		out[id] = delivery{ok: d.ok, first: d.first, attempts: append([]string(nil), d.attempts...)}
	}
	return out, r.badSig
}

func (r *receiver) has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.deliveries[id] != nil
}

func (r *receiver) Close() { _ = r.srv.Close() }
