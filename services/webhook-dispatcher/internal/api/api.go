// Package api serves the webhook REST API: organization-scoped (the JWT's
// organizationId), writes limited to configured roles, problem+json errors.
package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/httpx"
	"github.com/xpeditis/notify/pkg/problem"
	"github.com/xpeditis/notify/pkg/ratelimit"
	"github.com/xpeditis/notify/pkg/webhook"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/catalogue"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/outbound"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/secrets"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/ssrf"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/store"
)

// Bounds of the API's inputs.
const (
	MaxURLLength         = 2048
	MinSecretLength      = 16
	MaxSecretLength      = 256
	MaxDescriptionLength = 500
	DefaultLimit         = 20
	MaxLimit             = 100
	MaxRecoveryWindow    = 7 * 24 * time.Hour
	DefaultOverlap       = 24 * time.Hour
	MaxOverlap           = 7 * 24 * time.Hour
)

// Recoveries runs the recoveries the API starts.
type Recoveries interface {
	// Window is what EVENTS holds: the time before which events were
	// dropped (zero when none ever were) and its last sequence.
	Window(ctx context.Context) (oldest time.Time, lastSeq uint64, err error)
	// Wake has a new recovery looked at now.
	Wake()
}

// Announcer tells every replica that an organization's webhooks changed.
type Announcer interface{ Announce(org string) }

// Options are the API's rules.
type Options struct {
	WriteRoles         []string        // roles that may create, change, delete, test and retry
	MaxPerOrganization int             // most webhooks an organization may have
	Writes             ratelimit.Limit // per user: create, change, delete
	Sends              ratelimit.Limit // per organization: test and retry, which send a request now
}

// API is the webhook REST API.
type API struct {
	st     *store.Store
	keys   *secrets.Keyring
	guard  ssrf.Guard
	sender *outbound.Sender
	ann    Announcer
	rec    Recoveries
	opts   Options
	writes *ratelimit.Limiter
	sends  *ratelimit.Limiter
	events []byte // the answer of GET /api/v1/webhook-events
}

// New builds the API.
func New(st *store.Store, keys *secrets.Keyring, guard ssrf.Guard, sender *outbound.Sender, ann Announcer, rec Recoveries, o Options) (*API, error) {
	entries, err := catalogue.Load()
	if err != nil {
		return nil, err
	}
	events, err := json.Marshal(map[string]any{"data": entries})
	if err != nil {
		return nil, fmt.Errorf("webhook event catalogue: %w", err)
	}
	return &API{
		st: st, keys: keys, guard: guard, sender: sender, ann: ann, rec: rec, opts: o,
		writes: ratelimit.New(o.Writes, 0, nil), sends: ratelimit.New(o.Sends, 0, nil), events: events,
	}, nil
}

// Register adds the routes: the documents an integrator reads first
// (the event catalogue, the OpenAPI document) in the open, the rest under
// /api/v1/webhooks behind bearer authentication.
func (a *API) Register(e *echo.Echo, v *auth.Verifier) {
	e.GET("/api/v1/webhook-events", func(c *echo.Context) error { return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, a.events) })
	e.GET("/api/v1/webhooks/openapi.json", func(c *echo.Context) error { return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, OpenAPI) })
	a.Mount(e.Group("/api/v1/webhooks", httpx.RequireAuth(v)))
}

// Mount adds the webhook routes to g, whose middleware has authenticated
// the caller and stored the claims (httpx.Claims): the bearer token of the
// REST API, or the portal's session cookie.
func (a *API) Mount(g *echo.Group) {
	g.Use(requireOrg)
	write := a.writes.Middleware("webhook changes", func(c *echo.Context) string { return org(c) + "\x00" + httpx.Claims(c).UserID })
	send := a.sends.Middleware("webhook tests and retries by the organization", org)
	g.GET("", a.list)
	g.POST("", a.create, a.requireWriter, write)
	g.GET("/:id", a.get)
	g.PATCH("/:id", a.update, a.requireWriter, write)
	g.DELETE("/:id", a.delete, a.requireWriter, write)
	g.POST("/:id/rotate-secret", a.rotateSecret, a.requireWriter, write)
	g.POST("/:id/test", a.test, a.requireWriter, send)
	g.GET("/:id/deliveries", a.deliveries)
	g.GET("/:id/stats", a.stats)
	g.POST("/:id/recover", a.recover, a.requireWriter, write)
	g.GET("/:id/recoveries/:recoveryId", a.recovery)
	g.POST("/:id/deliveries/:deliveryId/retry", a.retry, a.requireWriter, send)
}

func requireOrg(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		if httpx.Claims(c).OrganizationID == "" {
			return problem.Forbidden("the token carries no organizationId; webhooks belong to an organization")
		}
		return next(c)
	}
}

func (a *API) requireWriter(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		role := httpx.Claims(c).Role
		if !slices.ContainsFunc(a.opts.WriteRoles, func(r string) bool { return strings.EqualFold(r, role) }) {
			return problem.Forbidden(fmt.Sprintf("role %q cannot manage webhooks (allowed: %s)", role, strings.Join(a.opts.WriteRoles, ", ")))
		}
		return next(c)
	}
}

// webhookJSON is a webhook as the API shows it. Secret is set only in the
// answer to create.
type webhookJSON struct {
	ID           string   `json:"id"`
	URL          string   `json:"url"`
	Events       []string `json:"events"`
	Status       string   `json:"status"`
	FailureCount int      `json:"failureCount"`
	Description  string   `json:"description"`
	SecretHint   string   `json:"secretHint"`
	// PreviousSecretExpiresAt is when the secret a rotation replaced stops
	// signing; null outside an overlap.
	PreviousSecretExpiresAt *time.Time `json:"previousSecretExpiresAt"`
	CreatedAt               time.Time  `json:"createdAt"`
	UpdatedAt               time.Time  `json:"updatedAt"`
	Secret                  string     `json:"secret,omitempty"`
}

func toJSON(w store.Webhook) webhookJSON {
	out := webhookJSON{
		ID: w.ID.String(), URL: w.URL, Events: w.Events, Status: w.Status, FailureCount: w.FailureCount,
		Description: w.Description, SecretHint: w.SecretHint, CreatedAt: w.CreatedAt.UTC(), UpdatedAt: w.UpdatedAt.UTC(),
	}
	if w.Overlapping(time.Now()) {
		t := w.PreviousUntil.Time.UTC()
		out.PreviousSecretExpiresAt = &t
	}
	return out
}

type page[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"nextCursor"`
}

func (a *API) list(c *echo.Context) error {
	limit, after, err := pageParams(c)
	if err != nil {
		return err
	}
	rows, err := a.st.ListWebhooks(c.Request().Context(), org(c), limit+1, after)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, pageOf(rows, limit, func(w store.Webhook) uuid.UUID { return w.ID }, toJSON))
}

type createRequest struct {
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Secret      *string  `json:"secret"`
	Description string   `json:"description"`
}

func (a *API) create(c *echo.Context) error {
	var req createRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	u, err := a.checkURL(req.URL)
	if err != nil {
		return err
	}
	events, err := checkEvents(req.Events)
	if err != nil {
		return err
	}
	if err := checkDescription(req.Description); err != nil {
		return err
	}
	secret := webhook.GenerateSecret()
	if req.Secret != nil {
		if err := checkSecret(*req.Secret); err != nil {
			return err
		}
		secret = *req.Secret
	}
	now := store.Now()
	w := store.Webhook{
		ID: uuid.Must(uuid.NewV7()), OrgID: org(c), URL: u, Events: events, Description: req.Description,
		Status: store.StatusActive, CreatedAt: now, UpdatedAt: now,
	}
	a.setSecret(&w, secret, time.Time{})
	var limit *store.LimitError
	if err := a.st.CreateWebhook(c.Request().Context(), w, a.opts.MaxPerOrganization); errors.As(err, &limit) {
		return problem.New(http.StatusConflict, "%s (WEBHOOK_MAX_PER_ORGANIZATION); delete one before creating another", limit.Error())
	} else if err != nil {
		return err
	}
	a.ann.Announce(w.OrgID)
	out := toJSON(w)
	out.Secret = secret
	return c.JSON(http.StatusCreated, out)
}

type updateRequest struct {
	URL         *string   `json:"url"`
	Events      *[]string `json:"events"`
	Secret      *string   `json:"secret"`
	Description *string   `json:"description"`
	Status      *string   `json:"status"`
}

func (a *API) update(c *echo.Context) error {
	id, err := idParam(c, "id", "webhook")
	if err != nil {
		return err
	}
	var req updateRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	// Validate everything before touching the row.
	var newURL string
	if req.URL != nil {
		if newURL, err = a.checkURL(*req.URL); err != nil {
			return err
		}
	}
	var events []string
	if req.Events != nil {
		if events, err = checkEvents(*req.Events); err != nil {
			return err
		}
	}
	if req.Secret != nil {
		if err := checkSecret(*req.Secret); err != nil {
			return err
		}
	}
	if req.Description != nil {
		if err := checkDescription(*req.Description); err != nil {
			return err
		}
	}
	if req.Status != nil && *req.Status != store.StatusActive && *req.Status != store.StatusInactive {
		return problem.BadRequest("status: must be ACTIVE (re-activate, resetting failureCount) or INACTIVE (turn off); FAILED is set by failures only")
	}
	w, err := a.st.UpdateWebhook(c.Request().Context(), org(c), id, func(w *store.Webhook) error {
		if req.URL != nil {
			w.URL = newURL
		}
		if req.Events != nil {
			w.Events = events
		}
		if req.Secret != nil {
			a.setSecret(w, *req.Secret, time.Time{}) // replaced at once, no overlap
		}
		if req.Description != nil {
			w.Description = *req.Description
		}
		if req.Status != nil {
			if *req.Status == store.StatusActive {
				w.FailureCount = 0
			}
			w.Status = *req.Status
		}
		return nil
	})
	if err != nil {
		return mapErr(err, "webhook")
	}
	a.ann.Announce(w.OrgID)
	return c.JSON(http.StatusOK, toJSON(w))
}

// get answers one webhook of the caller's organization (not in the first
// specification's route list; integrators expect the resource itself to answer a GET).
func (a *API) get(c *echo.Context) error {
	id, err := idParam(c, "id", "webhook")
	if err != nil {
		return err
	}
	w, err := a.st.GetWebhook(c.Request().Context(), org(c), id)
	if err != nil {
		return mapErr(err, "webhook")
	}
	return c.JSON(http.StatusOK, toJSON(w))
}

func (a *API) delete(c *echo.Context) error {
	id, err := idParam(c, "id", "webhook")
	if err != nil {
		return err
	}
	if err := a.st.DeleteWebhook(c.Request().Context(), org(c), id); err != nil {
		return mapErr(err, "webhook")
	}
	a.ann.Announce(org(c))
	return c.NoContent(http.StatusNoContent)
}

type testResult struct {
	Success         bool    `json:"success"`
	Outcome         string  `json:"outcome"`
	StatusCode      *int    `json:"statusCode"`
	DurationMs      int64   `json:"durationMs"`
	ResponseExcerpt string  `json:"responseExcerpt"`
	Error           *string `json:"error"`
}

// test sends a WEBHOOK_TEST event now. It is not recorded as a delivery and
// does not change failureCount or status, so it can check an endpoint
// before re-activating its webhook.
func (a *API) test(c *echo.Context) error {
	w, secret, err := a.webhookWithSecret(c)
	if err != nil {
		return err
	}
	id := uuid.Must(uuid.NewV7()).String()
	body, err := outbound.TestBody("test_"+id, w.OrgID, w.ID.String(), time.Now())
	if err != nil {
		return err
	}
	out := a.sender.Send(c.Request().Context(), w.URL, secret, webhook.Delivery{ID: id, Event: outbound.TestEvent, Timestamp: time.Now(), Attempt: 1}, body)
	res := testResult{Success: out.Success(), Outcome: out.Kind.Label(), DurationMs: out.Duration.Milliseconds(), ResponseExcerpt: out.Excerpt}
	if out.StatusCode != 0 {
		res.StatusCode = &out.StatusCode
	}
	if reason := out.Reason(); reason != "" {
		res.Error = &reason
	}
	return c.JSON(http.StatusOK, res)
}

// StatsWindow is the span of a webhook's health figures.
const StatsWindow = 24 * time.Hour

type statsJSON struct {
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	Deliveries struct {
		Total     int `json:"total"`
		Pending   int `json:"pending"`
		Succeeded int `json:"succeeded"`
		Failed    int `json:"failed"`
	} `json:"deliveries"`
	Attempts       int            `json:"attempts"`
	SuccessRate    *float64       `json:"successRate"` // of attempts; null without any
	ResponseTimeMs *responseTimes `json:"responseTimeMs"`
	LastError      *store.Attempt `json:"lastError"`
	Sampled        bool           `json:"sampled"`
}

type responseTimes struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
}

// stats answers a webhook's health over the last StatsWindow: its
// deliveries by status, the success rate of their attempts, the response
// time of those that were answered, and the last failed attempt.
func (a *API) stats(c *echo.Context) error {
	id, err := idParam(c, "id", "webhook")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := a.st.GetWebhook(ctx, org(c), id); err != nil {
		return mapErr(err, "webhook")
	}
	st, err := a.st.WebhookStats(ctx, org(c), id, StatsWindow)
	if err != nil {
		return err
	}
	out := statsJSON{From: st.From, To: st.To, Attempts: st.Attempts, LastError: st.LastError, Sampled: st.Sampled}
	out.Deliveries.Total, out.Deliveries.Pending, out.Deliveries.Succeeded, out.Deliveries.Failed = st.Deliveries, st.Pending, st.Succeeded, st.Failed
	if st.Attempts > 0 {
		rate := float64(st.AttemptsOK) / float64(st.Attempts)
		out.SuccessRate = &rate
	}
	if st.P50Ms.Valid && st.P95Ms.Valid {
		out.ResponseTimeMs = &responseTimes{P50: st.P50Ms.Float64, P95: st.P95Ms.Float64}
	}
	return c.JSON(http.StatusOK, out)
}

type recoverRequest struct {
	Since *string `json:"since"`
	Until *string `json:"until"`
}

type recoveryJSON struct {
	ID                string     `json:"id"`
	WebhookID         string     `json:"webhookId"`
	Since             time.Time  `json:"since"`
	Until             time.Time  `json:"until"`
	Status            string     `json:"status"`
	EventsScanned     int64      `json:"eventsScanned"`
	DeliveriesCreated int64      `json:"deliveriesCreated"`
	Deliveries        countsJSON `json:"deliveries"`
	Error             *string    `json:"error"`
	CreatedAt         time.Time  `json:"createdAt"`
	FinishedAt        *time.Time `json:"finishedAt"`
}

type countsJSON struct {
	Pending   int `json:"pending"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
}

func recoveryOf(r store.Recovery) recoveryJSON {
	out := recoveryJSON{
		ID: r.ID.String(), WebhookID: r.WebhookID.String(), Since: r.Since.UTC(), Until: r.Until.UTC(), Status: r.Status,
		EventsScanned: r.EventsRead, DeliveriesCreated: r.DeliveriesCreated,
		Deliveries: countsJSON{Pending: r.Pending, Succeeded: r.Succeeded, Failed: r.Failed}, CreatedAt: r.CreatedAt.UTC(),
	}
	if r.Error != "" {
		out.Error = &r.Error
	}
	if r.FinishedAt.Valid {
		t := r.FinishedAt.Time.UTC()
		out.FinishedAt = &t
	}
	return out
}

func parseTime(field string, v *string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, *v)
	if err != nil {
		return t, problem.BadRequest("%s: %q is not an RFC 3339 time such as 2026-11-29T10:00:00Z", field, *v)
	}
	return t, nil
}

// recover starts a recovery: every event of the webhook's types stored in
// EVENTS between since and until (default now) is sent again as a new
// delivery with its original event id. It answers 202 with the recovery,
// whose progress GET …/recoveries/:recoveryId shows.
func (a *API) recover(c *echo.Context) error {
	id, err := idParam(c, "id", "webhook")
	if err != nil {
		return err
	}
	var req recoverRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	now := store.Now()
	if req.Since == nil {
		return problem.BadRequest("since: required (RFC 3339 time)")
	}
	since, err := parseTime("since", req.Since)
	if err != nil {
		return err
	}
	until := now
	if req.Until != nil {
		if until, err = parseTime("until", req.Until); err != nil {
			return err
		}
	}
	switch {
	case since.After(now):
		return problem.BadRequest("since: %s is in the future", since.UTC().Format(time.RFC3339))
	case until.After(now):
		return problem.BadRequest("until: %s is in the future (omit it to mean now)", until.UTC().Format(time.RFC3339))
	case !since.Before(until):
		return problem.BadRequest("since: %s is not before until (%s)", since.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))
	case until.Sub(since) > MaxRecoveryWindow:
		return problem.BadRequest("since, until: the window is %s long; at most 7 days (168h) per recovery", until.Sub(since).Round(time.Second))
	}
	ctx := c.Request().Context()
	if _, err := a.st.GetWebhook(ctx, org(c), id); err != nil {
		return mapErr(err, "webhook")
	}
	oldest, lastSeq, err := a.rec.Window(ctx)
	if err != nil {
		return err
	}
	if !oldest.IsZero() && since.Before(oldest) {
		return problem.New(http.StatusConflict, "since: events before %s are no longer kept; the oldest available is from %s",
			oldest.UTC().Format(time.RFC3339Nano), oldest.UTC().Format(time.RFC3339Nano))
	}
	r := store.Recovery{
		ID: uuid.Must(uuid.NewV7()), WebhookID: id, OrgID: org(c), Since: since, Until: until, LastSeq: lastSeq,
		Status: store.RecoveryRunning, CreatedAt: now, UpdatedAt: now,
	}
	if err := a.st.CreateRecovery(ctx, r); err != nil {
		return mapErr(err, "webhook")
	}
	a.rec.Wake()
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/webhooks/"+id.String()+"/recoveries/"+r.ID.String())
	return c.JSON(http.StatusAccepted, recoveryOf(r))
}

func (a *API) recovery(c *echo.Context) error {
	id, err := idParam(c, "id", "webhook")
	if err != nil {
		return err
	}
	rid, err := idParam(c, "recoveryId", "recovery")
	if err != nil {
		return err
	}
	r, err := a.st.GetRecovery(c.Request().Context(), org(c), id, rid)
	if err != nil {
		return mapErr(err, "recovery")
	}
	return c.JSON(http.StatusOK, recoveryOf(r))
}

type deliveryJSON struct {
	ID            string          `json:"id"`
	WebhookID     string          `json:"webhookId"`
	EventID       string          `json:"eventId"`
	Event         string          `json:"event"`
	RecoveryID    *string         `json:"recoveryId"` // set on deliveries a recovery created
	Status        string          `json:"status"`
	Attempts      json.RawMessage `json:"attempts"`
	NextAttemptAt *time.Time      `json:"nextAttemptAt"`
	CreatedAt     time.Time       `json:"createdAt"`
	UpdatedAt     time.Time       `json:"updatedAt"`
}

func deliveryOf(d store.Delivery) deliveryJSON {
	out := deliveryJSON{
		ID: d.ID.String(), WebhookID: d.WebhookID.String(), EventID: d.EventID, Event: d.Event, Status: d.Status,
		Attempts: d.Attempts, CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
	}
	if d.RecoveryID.Valid {
		rid := d.RecoveryID.UUID.String()
		out.RecoveryID = &rid
	}
	if d.Status == store.DeliveryPending && d.NextAttemptAt.Valid {
		t := d.NextAttemptAt.Time.UTC()
		out.NextAttemptAt = &t
	}
	return out
}

func (a *API) deliveries(c *echo.Context) error {
	id, err := idParam(c, "id", "webhook")
	if err != nil {
		return err
	}
	limit, after, err := pageParams(c)
	if err != nil {
		return err
	}
	status := strings.ToUpper(c.QueryParam("status"))
	if status != "" && status != store.DeliveryPending && status != store.DeliverySucceeded && status != store.DeliveryFailed {
		return problem.BadRequest("status: must be PENDING, SUCCEEDED or FAILED")
	}
	event := c.QueryParam("event")
	if event != "" && !slices.Contains(contract.WebhookEvents(), event) {
		return problem.BadRequest("event: %q is not one of %s", event, strings.Join(contract.WebhookEvents(), ", "))
	}
	ctx := c.Request().Context()
	if _, err := a.st.GetWebhook(ctx, org(c), id); err != nil {
		return mapErr(err, "webhook")
	}
	rows, err := a.st.ListDeliveries(ctx, org(c), id, limit+1, after, store.DeliveryFilter{Status: status, Event: event})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, pageOf(rows, limit, func(d store.Delivery) uuid.UUID { return d.ID }, deliveryOf))
}

// retry sends one finished delivery again, now, with its original id and
// body, and records the attempt. Like the test, it does not change the
// webhook's failureCount or status.
func (a *API) retry(c *echo.Context) error {
	w, secret, err := a.webhookWithSecret(c)
	if err != nil {
		return err
	}
	did, err := idParam(c, "deliveryId", "delivery")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	d, err := a.st.GetDelivery(ctx, w.OrgID, w.ID, did)
	if err != nil {
		return mapErr(err, "delivery")
	}
	if d, err = a.st.StartManual(ctx, d); err != nil {
		return mapErr(err, "delivery")
	}
	n := d.AttemptCount + 1
	out := a.sender.Send(ctx, w.URL, secret, webhook.Delivery{ID: d.ID.String(), Event: d.Event, Timestamp: time.Now(), Attempt: n}, d.Body)
	status := store.DeliveryFailed
	if out.Success() {
		status = store.DeliverySucceeded
	}
	d, err = a.st.RecordManual(context.WithoutCancel(ctx), d.ID, out.Attempt(n, true), status)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, deliveryOf(d))
}

func (a *API) webhookWithSecret(c *echo.Context) (store.Webhook, outbound.Signing, error) {
	id, err := idParam(c, "id", "webhook")
	if err != nil {
		return store.Webhook{}, outbound.Signing{}, err
	}
	w, err := a.st.GetWebhook(c.Request().Context(), org(c), id)
	if err != nil {
		return w, outbound.Signing{}, mapErr(err, "webhook")
	}
	// Read from the row on every call, so that a secret whose key is back
	// (or that was replaced) is used at once.
	secret, err := a.keys.Open(w.SecretKeyID, w.SecretCiphertext, w.ID[:])
	if errors.Is(err, secrets.ErrUndecryptable) {
		return w, outbound.Signing{}, problem.New(http.StatusConflict, "%s; set a new secret (PATCH), or ask the operator to restore the key, then try again", err)
	}
	if err != nil {
		return w, outbound.Signing{}, fmt.Errorf("webhook %s: %w", w.ID, err)
	}
	sig := outbound.Signing{Secret: string(secret)}
	if w.Overlapping(time.Now()) {
		// An unreadable previous secret only leaves the new one signing.
		if prev, err := a.keys.Open(w.PreviousKeyID.String, w.PreviousCiphertext, w.ID[:]); err == nil {
			sig.Previous = string(prev)
		}
	}
	return w, sig, nil
}

// setSecret seals secret as w's; the secret it replaces keeps signing
// until previousUntil (zero: not at all).
func (a *API) setSecret(w *store.Webhook, secret string, previousUntil time.Time) {
	kid, sealed := a.keys.Seal([]byte(secret), w.ID[:])
	w.Rotate(kid, sealed, Hint(secret), previousUntil)
}

type rotateRequest struct {
	Secret  *string `json:"secret"`
	Overlap *string `json:"overlap"` // a Go duration: "24h", "90m", "0s"
}

type rotateResult struct {
	Secret string `json:"secret"`
	// PreviousSecretExpiresAt is the exact time the replaced secret stops
	// signing (null with no overlap): until then webhook-signature carries
	// both signatures and X-Webhook-Signature the previous secret's.
	PreviousSecretExpiresAt *time.Time  `json:"previousSecretExpiresAt"`
	Webhook                 webhookJSON `json:"webhook"`
}

// rotateSecret gives the webhook a new secret (generated unless given) and
// keeps the current one signing for the overlap, so that the integrator can
// deploy the new secret without failing a verification. Rotating during an
// overlap replaces the pending previous secret with the one in use until
// now: the older one stops signing at once.
func (a *API) rotateSecret(c *echo.Context) error {
	id, err := idParam(c, "id", "webhook")
	if err != nil {
		return err
	}
	var req rotateRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	secret := webhook.GenerateSecret()
	if req.Secret != nil {
		if err := checkSecret(*req.Secret); err != nil {
			return err
		}
		secret = *req.Secret
	}
	overlap := DefaultOverlap
	if req.Overlap != nil {
		d, err := time.ParseDuration(*req.Overlap)
		if err != nil || d < 0 || d > MaxOverlap {
			return problem.BadRequest("overlap: must be a duration from 0s to 168h (7 days), such as \"24h\"; got %q", *req.Overlap)
		}
		overlap = d
	}
	var until time.Time
	w, err := a.st.UpdateWebhook(c.Request().Context(), org(c), id, func(w *store.Webhook) error {
		if overlap > 0 {
			until = store.Now().Add(overlap)
		}
		a.setSecret(w, secret, until)
		return nil
	})
	if err != nil {
		return mapErr(err, "webhook")
	}
	a.ann.Announce(w.OrgID)
	out := rotateResult{Secret: secret, Webhook: toJSON(w)}
	if !until.IsZero() {
		out.PreviousSecretExpiresAt = &until
	}
	return c.JSON(http.StatusOK, out)
}

// Hint shows the last four characters of a secret.
func Hint(secret string) string {
	r := []rune(secret)
	return "…" + string(r[max(0, len(r)-4):])
}

func (a *API) checkURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", problem.BadRequest("url: required")
	}
	if len(raw) > MaxURLLength {
		return "", problem.BadRequest("url: longer than %d characters", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", problem.BadRequest("url: not a valid URL")
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return "", problem.BadRequest("url: must start with https:// or http://")
	case u.Hostname() == "":
		return "", problem.BadRequest("url: has no host")
	case u.User != nil:
		return "", problem.BadRequest("url: must not carry credentials; the signature authenticates deliveries")
	case u.Fragment != "":
		return "", problem.BadRequest("url: must not have a #fragment")
	}
	if err := a.guard.CheckURL(u); err != nil {
		return "", problem.BadRequest("url: target not allowed: %s", strings.TrimPrefix(err.Error(), ssrf.ErrBlocked.Error()+": "))
	}
	return u.String(), nil
}

func checkEvents(events []string) ([]string, error) {
	known := contract.WebhookEvents()
	if len(events) == 0 {
		return nil, problem.BadRequest("events: give at least one of %s", strings.Join(known, ", "))
	}
	var out []string
	for _, e := range events {
		if !slices.Contains(known, e) {
			return nil, problem.BadRequest("events: %q is not one of %s", e, strings.Join(known, ", "))
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out, nil
}

func checkSecret(s string) error {
	n := len([]rune(s))
	if n < MinSecretLength || n > MaxSecretLength {
		return problem.BadRequest("secret: must be %d to %d characters (omit it to get a generated one)", MinSecretLength, MaxSecretLength)
	}
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return problem.BadRequest("secret: must not contain spaces or control characters")
	}
	if rest, ok := strings.CutPrefix(s, webhook.SecretPrefix); ok {
		key, err := base64.StdEncoding.DecodeString(rest)
		if err != nil || len(key) < 16 {
			return problem.BadRequest("secret: a %s secret must be followed by at least 16 bytes in standard base64", webhook.SecretPrefix)
		}
	}
	return nil
}

func checkDescription(s string) error {
	if len([]rune(s)) > MaxDescriptionLength {
		return problem.BadRequest("description: longer than %d characters", MaxDescriptionLength)
	}
	return nil
}

func decode(c *echo.Context, v any) error {
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil { // the server (httpx.NewServer) has refused an over-limit body
		return problem.BadRequest("body: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return problem.BadRequest("body: one JSON object expected")
	}
	return nil
}

func idParam(c *echo.Context, name, what string) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Param(name))
	if err != nil {
		return id, problem.NotFound(what) // a malformed id names nothing
	}
	return id, nil
}

func pageParams(c *echo.Context) (int, *uuid.UUID, error) {
	limit := DefaultLimit
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return 0, nil, problem.BadRequest("limit: must be a number from 1 to %d", MaxLimit)
		}
		limit = n
	}
	s := c.QueryParam("cursor")
	if s == "" {
		return limit, nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, nil, problem.BadRequest("cursor: not a cursor this API returned")
	}
	id, err := uuid.FromBytes(raw)
	if err != nil {
		return 0, nil, problem.BadRequest("cursor: not a cursor this API returned")
	}
	return limit, &id, nil
}

// pageOf turns up to limit+1 rows, newest first, into a page: the first
// limit rows, and the cursor of the last one when there was one more.
func pageOf[R, T any](rows []R, limit int, id func(R) uuid.UUID, conv func(R) T) page[T] {
	out := page[T]{Data: []T{}}
	for i, r := range rows {
		if i == limit {
			out.NextCursor = cursorOf(id(rows[i-1]))
			break
		}
		out.Data = append(out.Data, conv(r))
	}
	return out
}

func cursorOf(id uuid.UUID) *string {
	s := base64.RawURLEncoding.EncodeToString(id[:])
	return &s
}

func org(c *echo.Context) string { return httpx.Claims(c).OrganizationID }

func mapErr(err error, what string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return problem.NotFound(what)
	}
	if conflict := (*store.ConflictError)(nil); errors.As(err, &conflict) {
		return problem.New(http.StatusConflict, "%s", conflict.Reason)
	}
	return err
}
