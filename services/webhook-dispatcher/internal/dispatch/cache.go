package dispatch

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/outbound"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/store"
)

// Hook is an ACTIVE webhook as the dispatcher sends to it.
type Hook struct {
	ID     uuid.UUID
	OrgID  string
	URL    string
	Events []string
	Secret string
	// SecretErr is why the stored secret cannot be decrypted (its key is
	// missing or changed); nil when Secret can sign. Such a hook still gets
	// delivery rows, which fail with this reason instead of being sent.
	SecretErr error
	// Previous is the secret a rotation replaced, which also signs until
	// PreviousUntil.
	Previous      string
	PreviousUntil time.Time
}

// Signing is what the hook's requests are signed with at now: the
// previous secret too until the rotation's overlap ends, to the request.
func (h Hook) Signing(now time.Time) outbound.Signing {
	if h.Previous != "" && now.Before(h.PreviousUntil) {
		return outbound.Signing{Secret: h.Secret, Previous: h.Previous}
	}
	return outbound.Signing{Secret: h.Secret}
}

// Subscribed reports whether the hook wants event.
func (h Hook) Subscribed(event string) bool { return slices.Contains(h.Events, event) }

// activeSource lists an organization's ACTIVE webhooks.
type activeSource interface {
	ActiveWebhooks(ctx context.Context, org string) ([]store.Webhook, error)
}

// secretOpener decrypts a stored secret.
type secretOpener interface {
	Open(keyID string, ciphertext, aad []byte) ([]byte, error)
}

// Cache holds each organization's ACTIVE webhooks with their decrypted
// secrets. Every replica drops an organization's entry when a change to its
// webhooks is announced (see Invalidations); the TTL bounds how long a lost
// announcement can leave an entry stale.
type Cache struct {
	src     activeSource
	keys    secretOpener
	ttl     time.Duration
	metrics *Metrics
	log     *slog.Logger

	mu   sync.Mutex
	orgs map[string]*orgEntry
}

type orgEntry struct {
	gen      uint64 // bumped by every invalidation
	loaded   bool
	hooks    []Hook
	loadedAt time.Time
	loading  chan struct{} // non-nil while a load runs
}

// NewCache builds a cache.
func NewCache(src activeSource, keys secretOpener, ttl time.Duration, metrics *Metrics, log *slog.Logger) *Cache {
	return &Cache{src: src, keys: keys, ttl: ttl, metrics: metrics, log: log, orgs: map[string]*orgEntry{}}
}

// Active returns the ACTIVE webhooks of org, loading them when needed. One
// load per organization runs at a time; a load that an invalidation
// overtook is not kept.
func (c *Cache) Active(ctx context.Context, org string) ([]Hook, error) {
	for {
		c.mu.Lock()
		e := c.orgs[org]
		if e == nil {
			e = &orgEntry{}
			c.orgs[org] = e
		}
		if e.loaded && time.Since(e.loadedAt) < c.ttl {
			hooks := e.hooks
			c.mu.Unlock()
			return hooks, nil
		}
		if wait := e.loading; wait != nil {
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		gen := e.gen
		done := make(chan struct{})
		e.loading = done
		c.mu.Unlock()

		hooks, err := c.load(ctx, org)

		c.mu.Lock()
		e.loading = nil
		close(done)
		if err == nil && e.gen == gen {
			e.loaded, e.hooks, e.loadedAt = true, hooks, time.Now()
		}
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if e.gen == gen {
			return hooks, nil
		}
		// Invalidated while loading: load again to see the change.
	}
}

// Hook returns one ACTIVE webhook of org.
func (c *Cache) Hook(ctx context.Context, org string, id uuid.UUID) (Hook, bool, error) {
	hooks, err := c.Active(ctx, org)
	if err != nil {
		return Hook{}, false, err
	}
	for _, h := range hooks {
		if h.ID == id {
			return h, true, nil
		}
	}
	return Hook{}, false, nil
}

// Invalidate drops the entry of org.
func (c *Cache) Invalidate(org string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.orgs[org]; e != nil {
		e.gen++
		e.loaded, e.hooks = false, nil
	}
}

// Sweep forgets entries that expired, so that the cache holds only
// organizations with recent events.
func (c *Cache) Sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for org, e := range c.orgs {
		if e.loading == nil && (!e.loaded || time.Since(e.loadedAt) >= c.ttl) {
			delete(c.orgs, org)
		}
	}
}

func (c *Cache) load(ctx context.Context, org string) ([]Hook, error) {
	rows, err := c.src.ActiveWebhooks(ctx, org)
	if err != nil {
		return nil, err
	}
	hooks := make([]Hook, 0, len(rows))
	for _, w := range rows {
		h := Hook{ID: w.ID, OrgID: w.OrgID, URL: w.URL, Events: w.Events}
		secret, err := c.keys.Open(w.SecretKeyID, w.SecretCiphertext, w.ID[:])
		if err != nil {
			// Failing the whole load would stall every webhook of the
			// organization behind this one; it is kept, marked, and only its
			// own deliveries fail. The error names the key id, not the secret.
			c.metrics.SecretErrors.Inc()
			c.log.Error("webhook secret cannot be decrypted; its deliveries fail until the key is back in WEBHOOK_SECRETS_KEYS or a new secret is set",
				"webhook_id", w.ID, "org", w.OrgID, "key_id", w.SecretKeyID, "err", err)
			h.SecretErr = err
		} else {
			h.Secret = string(secret)
		}
		if w.Overlapping(time.Now()) {
			if prev, err := c.keys.Open(w.PreviousKeyID.String, w.PreviousCiphertext, w.ID[:]); err == nil {
				h.Previous, h.PreviousUntil = string(prev), w.PreviousUntil.Time
			} else {
				// The new secret still signs; receivers not yet switched fail.
				c.metrics.SecretErrors.Inc()
				c.log.Error("previous webhook secret cannot be decrypted; deliveries are signed with the new secret only",
					"webhook_id", w.ID, "org", w.OrgID, "key_id", w.PreviousKeyID.String, "err", err)
			}
		}
		hooks = append(hooks, h)
	}
	return hooks, nil
}
