// Package api serves the notification REST routes (docs/architecture.md). Every route
// is scoped to the token's subject: another user's notification answers 404.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/httpx"
	"github.com/xpeditis/notify/pkg/problem"
	"github.com/xpeditis/notify/pkg/ratelimit"
	"github.com/xpeditis/notify/services/notification-api/internal/store"
)

// Publisher sends the sync messages that keep a user's other tabs current.
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Handler holds the routes' dependencies.
type Handler struct {
	store  *store.Store
	pub    Publisher
	log    *slog.Logger
	writes *ratelimit.Limiter // per user: marking read and deleting
}

// New returns the handler; writes limits each user's PATCH and DELETE
// requests.
func New(st *store.Store, pub Publisher, log *slog.Logger, writes ratelimit.Limit) *Handler {
	return &Handler{store: st, pub: pub, log: log, writes: ratelimit.New(writes, 0, nil)}
}

// Register adds the routes under /api/v1/notifications, and the OpenAPI
// document.
func (h *Handler) Register(e *echo.Echo, v *auth.Verifier) {
	e.GET("/api/v1/openapi.json", serveOpenAPI)
	g := e.Group("/api/v1/notifications", httpx.RequireAuth(v))
	g.GET("", h.list)
	g.GET("/unread-count", h.unreadCount)
	limit := h.writes.Middleware("changes", func(c *echo.Context) string { return httpx.Claims(c).UserID })
	g.PATCH("/read-all", h.readAll, limit)
	g.PATCH("/:id/read", h.read, limit)
	g.DELETE("/:id", h.delete, limit)
}

func (h *Handler) list(c *echo.Context) error {
	q, err := parseListQuery(c.Request().URL.RawQuery)
	if err != nil {
		return err
	}
	user := httpx.Claims(c).UserID
	ctx := c.Request().Context()
	rows, next, unread, err := h.store.List(ctx, user, q.filter, q.page)
	if err != nil {
		return err
	}
	var cursor *string
	if next != nil {
		s := encodeCursor(*next)
		cursor = &s
	}
	e := encoders.Get().(*listEncoder)
	defer e.release()
	if err := e.encodeList(rows, cursor, unread); err != nil {
		return err
	}
	// With its length, the page goes out in one write rather than chunked.
	c.Response().Header().Set(echo.HeaderContentLength, strconv.Itoa(e.out.Len()))
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, e.out.Bytes())
}

func (h *Handler) unreadCount(c *echo.Context) error {
	n, err := h.store.UnreadCount(c.Request().Context(), httpx.Claims(c).UserID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]int64{"unreadCount": n})
}

func (h *Handler) read(c *echo.Context) error {
	id, err := parseID(c.Param("id"))
	if err != nil {
		return err
	}
	user := httpx.Claims(c).UserID
	row, err := h.store.MarkRead(c.Request().Context(), user, id)
	if errors.Is(err, store.ErrNotFound) {
		return problem.NotFound("notification")
	}
	if err != nil {
		return err
	}
	n := row.JSON()
	h.sync(c.Request().Context(), user, contract.UserEventRead, contract.ReadMessage{ID: n.ID, ReadAt: *n.ReadAt})
	return c.JSON(http.StatusOK, n)
}

type readAllResponse struct {
	Updated     int64     `json:"updated"`
	ReadAt      time.Time `json:"readAt"`
	UnreadCount int64     `json:"unreadCount"`
}

func (h *Handler) readAll(c *echo.Context) error {
	q, err := parseFilterQuery(c.Request().URL.RawQuery)
	if err != nil {
		return err
	}
	user := httpx.Claims(c).UserID
	ctx := c.Request().Context()
	n, at, err := h.store.MarkAllRead(ctx, user, q.filter)
	if err != nil {
		return err
	}
	unread, err := h.store.UnreadCount(ctx, user)
	if err != nil {
		return err
	}
	h.sync(ctx, user, contract.UserEventReadAll, contract.ReadAllMessage{Count: n, ReadAt: at, Filters: q.echo})
	return c.JSON(http.StatusOK, readAllResponse{Updated: n, ReadAt: at, UnreadCount: unread})
}

func (h *Handler) delete(c *echo.Context) error {
	id, err := parseID(c.Param("id"))
	if err != nil {
		return err
	}
	user := httpx.Claims(c).UserID
	err = h.store.Delete(c.Request().Context(), user, id)
	if errors.Is(err, store.ErrNotFound) {
		return problem.NotFound("notification")
	}
	if err != nil {
		return err
	}
	h.sync(c.Request().Context(), user, contract.UserEventDeleted, contract.DeletedMessage{ID: id.String()})
	return c.NoContent(http.StatusNoContent)
}

// sync publishes a change on the user's NOTIFY subject. The change is
// already committed, so a failure here is logged rather than undoing it:
// other tabs catch up at their next fetch.
func (h *Handler) sync(ctx context.Context, user, event string, payload any) {
	data, err := json.Marshal(payload)
	if err != nil {
		h.log.Error("sync message", "err", err)
		return
	}
	body, _ := json.Marshal(contract.UserMessage{Event: event, Data: data})
	msg := nats.NewMsg(contract.NotifySubject(user))
	msg.Data = body
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if _, err := h.pub.PublishMsg(ctx, msg); err != nil {
		h.log.Warn("sync message not published", "event", event, "err", err)
	}
}

func parseID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return uuid.UUID{}, problem.BadRequest("id %q is not a notification id (a UUID)", truncate(s, 64))
	}
	return id, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
