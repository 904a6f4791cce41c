package store

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Concurrent creates never take an organization past its limit: the count
// and the insert run under a lock on the organization. Without it, creates
// racing at 9 of 10 all saw room.
func TestConcurrentCreatesStopAtTheLimit(t *testing.T) {
	s := newStore(t)
	const max, tries = 10, 40
	org := "org-" + uuid.NewString()
	other := "org-" + uuid.NewString()
	var wg sync.WaitGroup
	var mu sync.Mutex
	created, refused := 0, 0
	for i := range tries {
		wg.Go(func() {
			o := org
			if i%4 == 3 {
				o = other
			}
			now := time.Now().UTC()
			w := Webhook{ID: uuid.Must(uuid.NewV7()), OrgID: o, URL: "https://example.com/h", Events: []string{"BOOKING_CREATED"},
				SecretCiphertext: []byte{1}, SecretKeyID: "k", SecretHint: "…abcd", Status: StatusActive, CreatedAt: now, UpdatedAt: now}
			err := s.CreateWebhook(t.Context(), w, max)
			var limit *LimitError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case errors.As(err, &limit) && limit.Max == max:
				refused++
			default:
				t.Errorf("create: %v", err)
			}
		})
	}
	wg.Wait()
	var n, m int
	if err := s.db.Get(&n, `SELECT count(*) FROM webhooks WHERE org_id = $1`, org); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Get(&m, `SELECT count(*) FROM webhooks WHERE org_id = $1`, other); err != nil {
		t.Fatal(err)
	}
	if n != max || m != max || created != 2*max || refused != tries-2*max {
		t.Fatalf("%d and %d webhooks stored, %d created, %d refused; want %d each, %d refused", n, m, created, refused, max, tries-2*max)
	}
}
