// Package webhookdispatcher assembles the webhook-dispatcher service: the
// webhook REST API and the delivery pipeline over one store. notifyd
// composes it with the other services through New; the service's own binary
// runs it through Main.
package webhookdispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go"

	"github.com/xpeditis/notify/pkg/app"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/logx"
	"github.com/xpeditis/notify/pkg/postgres"
	"github.com/xpeditis/notify/pkg/ratelimit"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/api"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/dispatch"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/outbound"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/portal"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/recovery"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/secrets"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/ssrf"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/store"
	"github.com/xpeditis/notify/services/webhook-dispatcher/migrations"
)

// Name of the service: its durable consumer, its migrations, its logs.
const Name = "webhook-dispatcher"

// InvalidationSubject is the core NATS subject on which a replica announces
// that an organization's webhooks changed (payload: the organization id), so
// that every replica drops its cached copy.
const InvalidationSubject = "webhooks.changed"

// Config of webhook-dispatcher beyond the common settings. The variable of
// each field is in ReadConfig.
type Config struct {
	SecretKeys          string
	AllowPrivateTargets bool
	AllowTargets        []netip.Prefix
	WriteRoles          []string
	MaxPerOrganization  int
	Writes              ratelimit.Limit // per user: create, change, delete
	Sends               ratelimit.Limit // per organization: test, retry
	PortalSessionTTL    time.Duration   // how long a portal sign-in lasts

	MaxAttempts        int
	FailureThreshold   int
	RetryBase          time.Duration
	RetryMax           time.Duration
	RetryJitterPercent int
	RetryAfterMax      time.Duration

	ConnectTimeout time.Duration
	Timeout        time.Duration

	MaxInFlight           int
	MaxInFlightPerWebhook int
	QueuePerWebhook       int

	Lease        time.Duration
	PollInterval time.Duration
	AckWait      time.Duration
	Batch        int
	CacheTTL     time.Duration

	// RecoveryBacklog is how many deliveries of one recovery may be pending
	// at once; it reads on as they finish.
	RecoveryBacklog int

	// Resolve replaces the system resolver of outbound requests (tests map
	// names to addresses with it; the SSRF guard still checks what is dialled).
	Resolve ssrf.Lookup
}

// ReadConfig reads the service's settings.
func ReadConfig(e *config.Env) Config {
	c := Config{
		SecretKeys:          e.Required("WEBHOOK_SECRETS_KEYS"),
		AllowPrivateTargets: e.Bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", false),
		WriteRoles:          e.List("WEBHOOK_WRITE_ROLES", []string{"ADMIN", "MANAGER"}),
		MaxPerOrganization:  e.Int("WEBHOOK_MAX_PER_ORGANIZATION", 50),
		Writes:              ratelimit.Limit{PerMinute: e.Int("WEBHOOK_WRITES_PER_MINUTE", 60), Burst: e.Int("WEBHOOK_WRITE_BURST", 20)},
		Sends:               ratelimit.Limit{PerMinute: e.Int("WEBHOOK_TESTS_PER_MINUTE", 10), Burst: e.Int("WEBHOOK_TEST_BURST", 5)},
		PortalSessionTTL:    e.Duration("WEBHOOK_PORTAL_SESSION_TTL", time.Hour),

		MaxAttempts:        e.Int("WEBHOOK_MAX_ATTEMPTS", 3),
		FailureThreshold:   e.Int("WEBHOOK_FAILURE_THRESHOLD", 3),
		RetryBase:          e.Duration("WEBHOOK_RETRY_BASE", 30*time.Second),
		RetryMax:           e.Duration("WEBHOOK_RETRY_MAX", 10*time.Minute),
		RetryJitterPercent: e.Int("WEBHOOK_RETRY_JITTER_PERCENT", 20),
		RetryAfterMax:      e.Duration("WEBHOOK_RETRY_AFTER_MAX", 10*time.Minute),

		ConnectTimeout: e.Duration("WEBHOOK_CONNECT_TIMEOUT", 5*time.Second),
		Timeout:        e.Duration("WEBHOOK_TIMEOUT", 10*time.Second),

		MaxInFlight:           e.Int("WEBHOOK_MAX_IN_FLIGHT", 256),
		MaxInFlightPerWebhook: e.Int("WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK", 16),
		QueuePerWebhook:       e.Int("WEBHOOK_QUEUE_PER_WEBHOOK", 2000),

		Lease:        e.Duration("WEBHOOK_LEASE", 3*time.Second),
		PollInterval: e.Duration("WEBHOOK_POLL_INTERVAL", 250*time.Millisecond),
		AckWait:      e.Duration("WEBHOOK_ACK_WAIT", 30*time.Second),
		Batch:        e.Int("WEBHOOK_BATCH", 256),
		CacheTTL:     e.Duration("WEBHOOK_CACHE_TTL", time.Minute),

		RecoveryBacklog: e.Int("WEBHOOK_RECOVERY_BACKLOG", 500),
	}
	for _, s := range e.List("WEBHOOK_ALLOW_TARGETS", nil) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			e.Check(fmt.Errorf("WEBHOOK_ALLOW_TARGETS: %q is not a CIDR prefix such as 10.1.2.3/32", s))
			continue
		}
		c.AllowTargets = append(c.AllowTargets, p.Masked())
	}
	e.Check(c.Validate())
	return c
}

// Validate checks the rules across settings.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	if c.SecretKeys != "" {
		_, err := secrets.Parse(c.SecretKeys)
		check(err == nil, "WEBHOOK_SECRETS_KEYS: %v", err)
	}
	check(len(c.WriteRoles) > 0, "WEBHOOK_WRITE_ROLES: name at least one role")
	check(c.PortalSessionTTL >= time.Minute && c.PortalSessionTTL <= 24*time.Hour, "WEBHOOK_PORTAL_SESSION_TTL must be 1m to 24h")
	check(c.MaxPerOrganization >= 1, "WEBHOOK_MAX_PER_ORGANIZATION must be at least 1")
	check(c.Writes.PerMinute >= 0 && c.Writes.Burst >= 1, "WEBHOOK_WRITES_PER_MINUTE must be 0 (no limit) or more and WEBHOOK_WRITE_BURST at least 1")
	check(c.Sends.PerMinute >= 0 && c.Sends.Burst >= 1, "WEBHOOK_TESTS_PER_MINUTE must be 0 (no limit) or more and WEBHOOK_TEST_BURST at least 1")
	check(c.MaxAttempts >= 1 && c.MaxAttempts <= 20, "WEBHOOK_MAX_ATTEMPTS must be 1 to 20")
	check(c.FailureThreshold >= 1, "WEBHOOK_FAILURE_THRESHOLD must be at least 1")
	check(c.RetryBase > 0 && c.RetryMax >= c.RetryBase, "WEBHOOK_RETRY_BASE must be positive and at most WEBHOOK_RETRY_MAX")
	check(c.RetryJitterPercent >= 0 && c.RetryJitterPercent <= 50, "WEBHOOK_RETRY_JITTER_PERCENT must be 0 to 50")
	check(c.ConnectTimeout > 0 && c.Timeout >= c.ConnectTimeout, "WEBHOOK_CONNECT_TIMEOUT must be positive and at most WEBHOOK_TIMEOUT")
	check(c.MaxInFlight >= 1 && c.MaxInFlightPerWebhook >= 1 && c.MaxInFlightPerWebhook <= c.MaxInFlight,
		"WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK must be 1 to WEBHOOK_MAX_IN_FLIGHT")
	check(c.QueuePerWebhook >= 1, "WEBHOOK_QUEUE_PER_WEBHOOK must be at least 1")
	check(c.Lease >= time.Second, "WEBHOOK_LEASE must be at least 1s")
	check(c.AckWait >= c.Timeout+5*time.Second, "WEBHOOK_ACK_WAIT must be at least WEBHOOK_TIMEOUT + 5s")
	check(c.PollInterval > 0, "WEBHOOK_POLL_INTERVAL must be positive")
	check(c.Batch >= 1 && c.Batch <= 5000, "WEBHOOK_BATCH must be 1 to 5000")
	check(c.CacheTTL > 0, "WEBHOOK_CACHE_TTL must be positive")
	check(c.RecoveryBacklog >= 1 && c.RecoveryBacklog <= c.QueuePerWebhook, "WEBHOOK_RECOVERY_BACKLOG must be 1 to WEBHOOK_QUEUE_PER_WEBHOOK")
	return errors.Join(errs...)
}

// Guard is the SSRF guard of the configuration.
func (c Config) Guard() ssrf.Guard {
	return ssrf.Guard{AllowPrivate: c.AllowPrivateTargets, Allow: c.AllowTargets}
}

// Policy is the retry policy of the configuration.
func (c Config) Policy() dispatch.Policy {
	return dispatch.Policy{
		MaxAttempts: c.MaxAttempts, FailureThreshold: c.FailureThreshold, BaseDelay: c.RetryBase,
		MaxDelay: c.RetryMax, JitterPercent: c.RetryJitterPercent, RetryAfterMax: c.RetryAfterMax,
	}
}

// Service is webhook-dispatcher.
type Service struct {
	api    *api.API
	portal *portal.Portal
	deps   app.Deps
	disp   *dispatch.Dispatcher
	// recoveries runs the recoveries of missed events the API starts.
	recoveries *recovery.Runner
	st         *store.Store
	keys       *secrets.Keyring
	sub        *nats.Subscription
	log        *slog.Logger
	// keysErr says which keys of WEBHOOK_SECRETS_KEYS do not open the
	// secrets sealed under their id, found at start; the service is not
	// ready while it is set.
	keysErr error
}

// New migrates the database and builds the service.
func New(cfg Config) app.Builder {
	return func(ctx context.Context, d app.Deps) (app.Service, error) {
		keys, err := secrets.Parse(cfg.SecretKeys)
		if err != nil {
			return nil, fmt.Errorf("%s: WEBHOOK_SECRETS_KEYS: %w", Name, err)
		}
		if err := postgres.Migrate(ctx, d.DB, Name, migrations.FS); err != nil {
			return nil, err
		}
		log := d.Log.With("component", Name)
		if cfg.AllowPrivateTargets {
			log.Warn("WEBHOOK_ALLOW_PRIVATE_TARGETS is on: webhooks may reach loopback, private and metadata addresses; never use this in production")
		}
		st := store.New(d.DB)
		metrics := dispatch.NewMetrics(d.Metrics)
		cache := dispatch.NewCache(st, keys, cfg.CacheTTL, metrics, log)
		ann := &announcer{nc: d.NC, cache: cache, log: log, origin: uuid.NewString()}
		sub, err := d.NC.Subscribe(InvalidationSubject, ann.received)
		if err != nil {
			return nil, fmt.Errorf("%s: subscribe %s: %w", Name, InvalidationSubject, err)
		}
		tracer := d.Tracing.Tracer(Name)
		sender := outbound.NewSender(outbound.SenderOptions{ConnectTimeout: cfg.ConnectTimeout, Timeout: cfg.Timeout, Guard: cfg.Guard(), Lookup: cfg.Resolve, Tracer: tracer})
		s := &Service{deps: d, st: st, keys: keys, sub: sub, log: log}
		s.disp = dispatch.New(dispatch.Options{
			Consumer: Name, AckWait: cfg.AckWait, Batch: cfg.Batch, Lease: cfg.Lease, PollInterval: cfg.PollInterval,
			Policy: cfg.Policy(),
			Health: dispatch.Health{Consumer: d.Health.Condition("consumer:" + Name), Postgres: d.Postgres},
			Tracer: tracer,
			Limits: dispatch.Limits{
				MaxInFlight: cfg.MaxInFlight, PerWebhook: cfg.MaxInFlightPerWebhook,
				QueuePerWebhook: cfg.QueuePerWebhook, MaxQueued: 20 * cfg.MaxInFlight, StartPerWebhook: 1,
			},
		}, st, cache, sender, d.JS, ann, metrics, log)
		s.recoveries = recovery.New(recovery.Options{
			Lease: recoveryLease, Batch: cfg.Batch, Backlog: cfg.RecoveryBacklog, MaxConcurrent: 4, Poll: 250 * time.Millisecond,
		}, st, d.JS, log)
		if s.api, err = api.New(st, keys, cfg.Guard(), sender, ann, s.recoveries, api.Options{
			WriteRoles: cfg.WriteRoles, MaxPerOrganization: cfg.MaxPerOrganization, Writes: cfg.Writes, Sends: cfg.Sends,
		}); err != nil {
			return nil, fmt.Errorf("%s: %w", Name, err)
		}
		s.portal = portal.New(keys, d.Verifier, portal.Options{WriteRoles: cfg.WriteRoles, SessionTTL: cfg.PortalSessionTTL})
		if s.keysErr, err = checkKeys(ctx, st, keys); err != nil {
			return nil, err
		}
		// A wrong key keeps the service not ready until it is restarted
		// with the right one; the condition logs it once.
		d.Health.Condition("webhook_secrets_keys").Report(s.keysErr)
		return s, nil
	}
}

// Register adds the REST routes and the portal, which serves the same
// routes behind its session.
func (s *Service) Register(e *echo.Echo) {
	s.api.Register(e, s.deps.Verifier)
	s.portal.Register(e, s.api.Mount)
}

// recoveryLease is how long a recovery stays with a replica that stopped
// renewing it (it died) before another replica resumes it.
const recoveryLease = 15 * time.Second

// keySamples is how many secrets checkKeys tries under each key id: one
// that opens is enough, so one damaged row does not fail a good key.
const keySamples = 3

// checkKeys tries every key id that seals a stored secret on a few of its
// secrets. A key id the ring holds that opens none of them has the wrong
// key behind it (a typo, or a key replaced under the same id): every
// signing with it would fail, so the service should not take traffic; the
// answer names the ids, never a key. A key id the ring does not hold at all
// is not counted (reencryptSecrets logs each of its secrets): its webhooks
// fail with a reason and can be given a new secret through the API, which
// must stay up for that. err is a failure to read the database.
func checkKeys(ctx context.Context, st *store.Store, keys *secrets.Keyring) (wrong, err error) {
	rows, err := st.SecretSamples(ctx, keySamples)
	if err != nil {
		return nil, fmt.Errorf("%s: check WEBHOOK_SECRETS_KEYS: %w", Name, err)
	}
	opened := map[string]bool{}
	var order []string
	for _, r := range rows {
		if _, seen := opened[r.KeyID]; !seen {
			order = append(order, r.KeyID)
			opened[r.KeyID] = false
		}
		if _, err := keys.Open(r.KeyID, r.Ciphertext, r.ID[:]); err == nil {
			opened[r.KeyID] = true
		}
	}
	var bad []string
	for _, id := range order {
		if !opened[id] && keys.Has(id) {
			bad = append(bad, fmt.Sprintf("%q", id))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("WEBHOOK_SECRETS_KEYS: the key behind id %s does not open the webhook secrets sealed under that id; restore the key that sealed them", strings.Join(bad, ", ")), nil
	}
	return nil, nil
}

// Run delivers until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	defer func() { _ = s.sub.Unsubscribe() }()
	go s.reencryptSecrets(ctx)
	recovering := make(chan struct{})
	go func() { defer close(recovering); s.recoveries.Run(ctx) }()
	err := s.disp.Run(ctx)
	<-recovering
	return err
}

// reencryptStopped reports a re-encryption cut short by err: nothing to say
// when the service is stopping, else a warning (the next start goes on
// where this one stopped).
func (s *Service) reencryptStopped(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	s.log.Warn("re-encrypt secrets stopped; the next start goes on", "err", err)
}

// reencryptSecrets moves secrets sealed with an older key to the current
// one, so that the older key can be retired: the current secrets, then the
// replaced secrets of rotations still overlapping. A secret it cannot open
// (its key is gone) is logged and passed over, so that one lost key does
// not keep every other secret on its old key.
func (s *Service) reencryptSecrets(ctx context.Context) {
	moved, unreadable := 0, 0
	for _, previous := range []bool{false, true} {
		m, u, ok := s.reencrypt(ctx, previous)
		moved, unreadable = moved+m, unreadable+u
		if !ok {
			return
		}
	}
	if moved > 0 || unreadable > 0 {
		s.log.Info("re-encrypted webhook secrets with the current key", "key_id", s.keys.Current(), "count", moved, "unreadable", unreadable)
	}
}

// reencrypt moves one kind of secret (see reencryptSecrets); ok is false
// when it stopped early.
func (s *Service) reencrypt(ctx context.Context, previous bool) (moved, unreadable int, ok bool) {
	var after uuid.UUID
	for ctx.Err() == nil {
		rows, err := s.st.SecretsNotUnder(ctx, s.keys.Current(), previous, after, 100)
		if err != nil {
			s.reencryptStopped(ctx, err)
			return moved, unreadable, false
		}
		if len(rows) == 0 {
			break
		}
		after = rows[len(rows)-1].ID
		for _, r := range rows {
			plain, err := s.keys.Open(r.KeyID, r.Ciphertext, r.ID[:])
			if err != nil {
				unreadable++
				s.log.Error("re-encrypt secret: its key is not in WEBHOOK_SECRETS_KEYS; its deliveries fail until the key is back or a new secret is set",
					"webhook_id", r.ID, "key_id", r.KeyID, "previous", r.Previous, "err", err)
				continue
			}
			kid, ct := s.keys.Seal(plain, r.ID[:])
			if err := s.st.ReplaceSecret(ctx, r, kid, ct); err != nil {
				s.reencryptStopped(ctx, err)
				return moved, unreadable, false
			}
			moved++
		}
	}
	return moved, unreadable, ctx.Err() == nil
}

// announcer drops the local cache entry and tells the other replicas: one
// invalidation per change in every replica, its own included (the
// announcement comes back to its sender, which skips it by its origin).
type announcer struct {
	nc     *nats.Conn
	cache  *dispatch.Cache
	log    *slog.Logger
	origin string // this replica's id, in the header originHeader
}

// originHeader names the replica that announced a change.
const originHeader = "Webhooks-Origin"

func (a *announcer) Announce(org string) {
	a.cache.Invalidate(org)
	m := nats.NewMsg(InvalidationSubject)
	m.Data = []byte(org)
	m.Header.Set(originHeader, a.origin)
	if err := a.nc.PublishMsg(m); err != nil {
		a.log.Warn("announce webhook change; other replicas see it when their cache expires", "org", org, "err", err)
	}
}

func (a *announcer) received(m *nats.Msg) {
	if m.Header.Get(originHeader) != a.origin {
		a.cache.Invalidate(string(m.Data))
	}
}

// Main runs webhook-dispatcher alone, configured from the environment.
func Main(ctx context.Context, _ []string) error {
	env := config.FromOS()
	common := config.ReadCommon(env, true, true)
	cfg := ReadConfig(env)
	if err := env.Err(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := logx.New(os.Stderr, common.LogLevel).With("service", Name)
	return app.Run(ctx, app.Options{Name: Name, Common: common, Log: log, NeedDB: true, Services: []app.Builder{New(cfg)},
		ShutdownGrace: cfg.ShutdownGrace()})
}

// ShutdownGrace is how long a graceful stop may take: requests in flight
// are let finish, each within WEBHOOK_TIMEOUT, and their results recorded.
func (c Config) ShutdownGrace() time.Duration {
	return max(20*time.Second, c.Timeout+10*time.Second)
}

// NewSecretKeySpec returns a fresh WEBHOOK_SECRETS_KEYS entry "id:base64key"
// (notifyd's development key; operators can make one with
// `openssl rand -base64 32`).
func NewSecretKeySpec(id string) string { return secrets.NewKeySpec(id) }
