// Package demo is notifyd's demo page and the development-only endpoints
// behind it: pick a demo user, get a development token, watch the live inbox
// through socket.io-client, mark notifications read and publish sample
// events. notifyd registers it only in development mode: the token endpoint
// signs tokens for anyone who asks.
package demo

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"regexp"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/httpx"
	"github.com/xpeditis/notify/pkg/problem"
	"github.com/xpeditis/notify/pkg/publisher"
)

// static holds the page and the socket.io-client bundle, copied from the
// npm package locked in e2e/package-lock.json (scripts/test-setup-demo.sh
// checks that the copy matches): the page works without internet.
//
//go:embed static
var static embed.FS

// TokenTTL is the lifetime of a development token.
const TokenTTL = 12 * time.Hour

// User is a demo user the page offers.
type User struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	OrganizationID string `json:"organizationId"`
	Role           string `json:"role"`
}

// Users are the demo users: two colleagues of one forwarder, so that the
// page shows that each sees only their own notifications, and a carrier.
func Users() []User {
	return []User{
		{ID: "alice", Name: "Alice Martin — forwarder, operations", OrganizationID: "org-demo-forwarder", Role: "MANAGER"},
		{ID: "bob", Name: "Bob Durand — forwarder, finance", OrganizationID: "org-demo-forwarder", Role: "USER"},
		{ID: "chloe", Name: "Chloé Petit — carrier", OrganizationID: "org-demo-carrier", Role: "ADMIN"},
	}
}

// Handler serves the page and the development endpoints.
type Handler struct {
	assets   fs.FS
	secret   string
	verifier *auth.Verifier
	pub      *publisher.Publisher
	log      *slog.Logger
}

// New returns the demo handler. It needs the HS256 secret to sign
// development tokens: with JWKS-only verification there is nothing to sign
// with.
func New(secret string, verifier *auth.Verifier, js jetstream.JetStream, log *slog.Logger) (*Handler, error) {
	if secret == "" {
		return nil, errors.New("demo: development tokens need JWT_SECRET (HS256)")
	}
	assets, err := fs.Sub(static, "static")
	if err != nil {
		return nil, fmt.Errorf("demo: embedded files: %w", err)
	}
	return &Handler{assets: assets, secret: secret, verifier: verifier, pub: publisher.New(js), log: log}, nil
}

// Register adds the page at / and the endpoints under /dev/.
func (h *Handler) Register(e *echo.Echo) {
	e.GET("/", h.index())
	e.StaticFS("/demo", h.assets)
	e.GET("/dev/config", h.config)
	e.POST("/dev/token", h.token)
	e.POST("/dev/events", h.publish, httpx.RequireAuth(h.verifier))
}

// The page loads nothing from elsewhere; the policy makes sure of it.
const contentSecurityPolicy = "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"

func (h *Handler) index() echo.HandlerFunc {
	serve := echo.StaticFileHandler("index.html", h.assets)
	return func(c *echo.Context) error {
		c.Response().Header().Set("Content-Security-Policy", contentSecurityPolicy)
		c.Response().Header().Set("Cache-Control", "no-store")
		return serve(c)
	}
}

type configResponse struct {
	Users      []User   `json:"users"`
	EventTypes []string `json:"eventTypes"`
	// Labels are the words the page shows for each type (the default
	// title of its notification), instead of the enum.
	Labels map[string]string `json:"labels"`
}

func (h *Handler) config(c *echo.Context) error {
	var types []string
	labels := map[string]string{}
	for _, t := range contract.EventTypes() {
		r, _ := contract.RouteOf(t)
		labels[t] = r.Title
		if r.InApp != "" {
			types = append(types, t)
		}
	}
	return c.JSON(http.StatusOK, configResponse{Users: Users(), EventTypes: types, Labels: labels})
}

type tokenRequest struct {
	UserID         string `json:"userId"`
	OrganizationID string `json:"organizationId"`
	Role           string `json:"role"`
}

type tokenResponse struct {
	Token          string    `json:"token"`
	UserID         string    `json:"userId"`
	OrganizationID string    `json:"organizationId"`
	Role           string    `json:"role"`
	ExpiresAt      time.Time `json:"expiresAt"`
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// token signs a development token for a demo user, or for any user id a
// developer names, with the demo user's organization and role as defaults.
func (h *Handler) token(c *echo.Context) error {
	var req tokenRequest
	if err := c.Bind(&req); err != nil {
		return problem.BadRequest("body must be a JSON object such as {\"userId\": \"alice\"}")
	}
	if !idPattern.MatchString(req.UserID) {
		return problem.BadRequest("userId must be 1 to 64 letters, digits or . _ @ - (starting with a letter or digit)")
	}
	org, role := "org-demo", "USER"
	for _, u := range Users() {
		if u.ID == req.UserID {
			org, role = u.OrganizationID, u.Role
		}
	}
	if req.OrganizationID != "" {
		if !idPattern.MatchString(req.OrganizationID) {
			return problem.BadRequest("organizationId must be 1 to 64 letters, digits or . _ @ -")
		}
		org = req.OrganizationID
	}
	if req.Role != "" {
		if !idPattern.MatchString(req.Role) {
			return problem.BadRequest("role must be 1 to 64 letters, digits or . _ @ -")
		}
		role = req.Role
	}
	tok, err := auth.Mint(h.secret, auth.MintOptions{UserID: req.UserID, OrganizationID: org, Role: role, TTL: TokenTTL})
	if err != nil {
		return fmt.Errorf("mint development token: %w", err)
	}
	h.log.Info("development token issued", "user", req.UserID, "organization", org)
	return c.JSON(http.StatusOK, tokenResponse{Token: tok, UserID: req.UserID, OrganizationID: org, Role: role,
		ExpiresAt: time.Now().Add(TokenTTL).UTC().Truncate(time.Second)})
}

type publishRequest struct {
	Type       string         `json:"type"`
	Recipients []string       `json:"recipients"` // default: the caller
	Priority   string         `json:"priority"`
	Title      string         `json:"title"`
	Message    string         `json:"message"`
	Data       map[string]any `json:"data"`
}

type publishResponse struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Stream   string `json:"stream"`
	Sequence uint64 `json:"sequence"`
}

// publish puts a sample domain event on EVENTS, as a backend service
// would, for the caller's organization and by default to the caller.
func (h *Handler) publish(c *echo.Context) error {
	claims := httpx.Claims(c)
	var req publishRequest
	if err := c.Bind(&req); err != nil {
		return problem.BadRequest("body must be a JSON object such as {\"type\": \"BOOKING_CREATED\"}")
	}
	if len(req.Recipients) == 0 {
		req.Recipients = []string{claims.UserID}
	}
	org := claims.OrganizationID
	if org == "" {
		org = "org-demo"
	}
	if req.Data == nil {
		req.Data = sampleData(req.Type)
	}
	data, err := structpb.NewStruct(req.Data)
	if err != nil {
		return problem.BadRequest("data: %v", err)
	}
	ev := &contract.Event{
		Id: uuid.NewString(), Type: req.Type, OccurredAt: timestamppb.Now(), OrganizationId: org,
		Recipients: req.Recipients, Priority: req.Priority, Title: req.Title, Message: req.Message, Data: data,
	}
	ack, err := h.pub.Publish(c.Request().Context(), ev)
	if err != nil {
		var ie *contract.InvalidEventError
		if errors.As(err, &ie) {
			return problem.BadRequest("%s", ie.Reason)
		}
		return fmt.Errorf("publish demo event: %w", err)
	}
	return c.JSON(http.StatusAccepted, publishResponse{ID: ev.Id, Type: ev.Type, Stream: ack.Stream, Sequence: ack.Sequence})
}

// sampleData is a plausible payload for an event type, so that the inbox
// shows what real events carry.
func sampleData(eventType string) map[string]any {
	ref := fmt.Sprintf("%04d", time.Now().UnixMilli()%10000)
	switch eventType {
	case "PAYMENT_SUCCESS", "PAYMENT_FAILED":
		return map[string]any{"bookingId": "BK-" + ref, "invoiceId": "INV-" + ref, "amount": 1840.5, "currency": "EUR"}
	case "DOCUMENT_UPLOADED":
		return map[string]any{"bookingId": "BK-" + ref, "documentId": "DOC-" + ref, "kind": "BILL_OF_LADING"}
	case "SUBSCRIPTION_UPDATED":
		return map[string]any{"plan": "PRO"}
	case "SYSTEM":
		return map[string]any{}
	default:
		return map[string]any{"bookingId": "BK-" + ref, "route": "FRLEH → CNSHA"}
	}
}
