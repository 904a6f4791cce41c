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
)

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
	opts   Options
	writes *ratelimit.Limiter
	sends  *ratelimit.Limiter
}

// New builds the API.
func New(st *store.Store, keys *secrets.Keyring, guard ssrf.Guard, sender *outbound.Sender, ann Announcer, o Options) *API {
	return &API{
		st: st, keys: keys, guard: guard, sender: sender, ann: ann, opts: o,
		writes: ratelimit.New(o.Writes, 0, nil), sends: ratelimit.New(o.Sends, 0, nil),
	}
}

// Register adds the routes under /api/v1/webhooks, behind bearer
// authentication.
func (a *API) Register(e *echo.Echo, v *auth.Verifier) {
	a.Mount(e.Group("/api/v1/webhooks", httpx.RequireAuth(v)))
}

// Mount adds the routes to g, whose middleware has authenticated the
// caller and stored the claims (httpx.Claims): the bearer token of the
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
	g.POST("/:id/test", a.test, a.requireWriter, send)
	g.GET("/:id/deliveries", a.deliveries)
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
	ID           string    `json:"id"`
	URL          string    `json:"url"`
	Events       []string  `json:"events"`
	Status       string    `json:"status"`
	FailureCount int       `json:"failureCount"`
	Description  string    `json:"description"`
	SecretHint   string    `json:"secretHint"`
	CreatedAt    time.Time `json:"createdAt"`
	UpdatedAt    time.Time `json:"updatedAt"`
	Secret       string    `json:"secret,omitempty"`
}

func toJSON(w store.Webhook) webhookJSON {
	return webhookJSON{
		ID: w.ID.String(), URL: w.URL, Events: w.Events, Status: w.Status, FailureCount: w.FailureCount,
		Description: w.Description, SecretHint: w.SecretHint, CreatedAt: w.CreatedAt.UTC(), UpdatedAt: w.UpdatedAt.UTC(),
	}
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
	a.setSecret(&w, secret)
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
			a.setSecret(w, *req.Secret)
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

type deliveryJSON struct {
	ID            string          `json:"id"`
	WebhookID     string          `json:"webhookId"`
	EventID       string          `json:"eventId"`
	Event         string          `json:"event"`
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
	return w, outbound.Signing{Secret: string(secret)}, nil
}

func (a *API) setSecret(w *store.Webhook, secret string) {
	w.SecretKeyID, w.SecretCiphertext = a.keys.Seal([]byte(secret), w.ID[:])
	w.SecretHint = Hint(secret)
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
