// Package portal serves the webhook portal: a web page at /portal/ where
// the users of an organization who may manage its webhooks list, create,
// edit, test and rotate them and browse their deliveries.
//
// Sign-in. The host application (the Xpeditis frontend) opens
// /portal/#token=<JWT> with a token of the signed-in user, short-lived if it
// likes. The fragment never reaches a server or a Referer; the page removes
// it from the address bar and history at once and posts the token to
// POST /portal/session, which verifies it like any API call, refuses roles
// that may not manage webhooks (403) and answers with a session cookie:
// HttpOnly (scripts cannot read it), SameSite=Strict (no other site's page
// can make the browser send it), Secure when the request came over TLS, and
// Path=/portal/, so it is never sent to the bearer-token REST API. Its value
// is the user, organization, role and expiry sealed with AES-256-GCM by the
// dispatcher's WEBHOOK_SECRETS_KEYS keyring: every replica opens it, nobody
// else can forge or read it, and it follows that keyring's rotation. No
// session state is kept on the server.
//
// The page then calls the webhook API under /portal/api/webhooks/…, the
// same handlers as /api/v1/webhooks/… with the session instead of a bearer
// token. Every request that changes something must carry an Origin header
// naming this host (browsers send it on every POST, PATCH and DELETE) and,
// when the browser sends Sec-Fetch-Site, come from the same origin: with
// SameSite=Strict that is two independent guards against cross-site request
// forgery. The page runs no inline script (the Content-Security-Policy says
// script-src 'self'), so an injected string cannot run either.
package portal

import (
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/problem"
)

//go:embed static
var static embed.FS

// CookieName is the session cookie.
const CookieName = "notify_portal"

// Path is where the portal lives; the cookie is scoped to it.
const Path = "/portal/"

// ContentSecurityPolicy of every portal page and asset: scripts, styles and
// requests from this origin only, no inline script or style, no framing.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// sessionAAD binds a sealed session to its purpose, so that no other
// ciphertext of the keyring (a webhook secret) passes for a session.
var sessionAAD = []byte("xpeditis-notify portal session v1")

// Sealer encrypts and authenticates session cookies: the dispatcher's
// secrets keyring.
type Sealer interface {
	Seal(plaintext, aad []byte) (keyID string, ciphertext []byte)
	Open(keyID string, ciphertext, aad []byte) ([]byte, error)
}

// Options are the portal's rules.
type Options struct {
	WriteRoles []string      // roles that may sign in: those that may manage webhooks
	SessionTTL time.Duration // how long a session lasts after sign-in
}

// Portal serves the page, its session endpoints and the API behind the
// session.
type Portal struct {
	keys     Sealer
	verifier *auth.Verifier
	opts     Options
	assets   fs.FS
}

// New builds the portal.
func New(keys Sealer, verifier *auth.Verifier, o Options) *Portal {
	assets, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded directory is part of the binary
	}
	return &Portal{keys: keys, verifier: verifier, opts: o, assets: assets}
}

// Register adds the page, its assets and the session endpoints, and hands
// mount the group /portal/api/webhooks, authenticated by the session, to
// add the webhook API to.
func (p *Portal) Register(e *echo.Echo, mount func(*echo.Group)) {
	e.GET("/portal", func(c *echo.Context) error { return c.Redirect(http.StatusMovedPermanently, Path) })
	g := e.Group("/portal", securityHeaders)
	g.GET("/", p.index())
	g.StaticFS("/assets", p.assets)
	g.POST("/session", p.signIn, sameOrigin)
	g.GET("/session", p.session, p.requireSession)
	g.DELETE("/session", p.signOut, sameOrigin)
	mount(g.Group("/api/webhooks", sameOrigin, p.requireSession))
}

func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		return next(c)
	}
}

func (p *Portal) index() echo.HandlerFunc {
	return echo.StaticFileHandler("index.html", p.assets)
}

// sameOrigin refuses a request that changes something unless the browser
// says it comes from a page of this origin.
func sameOrigin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		r := c.Request()
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			return next(c)
		}
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
			return problem.Forbidden(fmt.Sprintf("the portal accepts changes from its own pages only (Sec-Fetch-Site: %s)", site))
		}
		origin := r.Header.Get("Origin")
		if origin == "" {
			return problem.Forbidden("the portal accepts changes from its own pages only (no Origin header)")
		}
		u, err := url.Parse(origin)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return problem.Forbidden("the portal accepts changes from its own pages only (Origin " + origin + " is not this host)")
		}
		return next(c)
	}
}

// sessionClaims is what the cookie seals.
type sessionClaims struct {
	UserID         string `json:"sub"`
	OrganizationID string `json:"org"`
	Role           string `json:"role"`
	Expires        int64  `json:"exp"` // unix seconds
}

// sessionJSON is what the page learns of its session.
type sessionJSON struct {
	UserID         string    `json:"userId"`
	OrganizationID string    `json:"organizationId"`
	Role           string    `json:"role"`
	ExpiresAt      time.Time `json:"expiresAt"`
	Events         []string  `json:"events"` // webhook event names a webhook may subscribe to
}

func sessionOf(s sessionClaims) sessionJSON {
	return sessionJSON{UserID: s.UserID, OrganizationID: s.OrganizationID, Role: s.Role,
		ExpiresAt: time.Unix(s.Expires, 0).UTC(), Events: contract.WebhookEvents()}
}

type signInRequest struct {
	Token string `json:"token"`
}

// signIn exchanges a JWT of the host application for a session cookie.
func (p *Portal) signIn(c *echo.Context) error {
	var req signInRequest
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return problem.BadRequest(`body: a JSON object {"token": "<JWT>"} is expected`)
	}
	claims, err := p.verifier.Verify(strings.TrimSpace(req.Token))
	if err != nil {
		return problem.Unauthorized("token: " + strings.TrimPrefix(err.Error(), auth.ErrInvalidToken.Error()+": "))
	}
	if claims.OrganizationID == "" {
		return problem.Forbidden("the token carries no organizationId; webhooks belong to an organization")
	}
	if !p.canWrite(claims.Role) {
		return problem.Forbidden(fmt.Sprintf("role %q cannot manage webhooks; the portal is for %s", claims.Role, strings.Join(p.opts.WriteRoles, ", ")))
	}
	s := sessionClaims{UserID: claims.UserID, OrganizationID: claims.OrganizationID, Role: claims.Role,
		Expires: time.Now().Add(p.opts.SessionTTL).Unix()}
	plain, err := json.Marshal(s)
	if err != nil {
		return err
	}
	kid, ct := p.keys.Seal(plain, sessionAAD)
	c.SetCookie(p.cookie(c, base64.RawURLEncoding.EncodeToString([]byte(kid))+"."+base64.RawURLEncoding.EncodeToString(ct), int(p.opts.SessionTTL.Seconds())))
	return c.JSON(http.StatusOK, sessionOf(s))
}

func (p *Portal) signOut(c *echo.Context) error {
	c.SetCookie(p.cookie(c, "", -1))
	return c.NoContent(http.StatusNoContent)
}

func (p *Portal) session(c *echo.Context) error {
	s, _ := c.Get(sessionKey).(sessionClaims)
	return c.JSON(http.StatusOK, sessionOf(s))
}

func (p *Portal) cookie(c *echo.Context, value string, maxAge int) *http.Cookie {
	r := c.Request()
	return &http.Cookie{
		Name: CookieName, Value: value, Path: Path, MaxAge: maxAge, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		// Behind a TLS-terminating proxy the request arrives in plain
		// HTTP; the proxy says so. Marking the cookie Secure on a
		// client's say-so costs nothing: it only stops the cookie from
		// travelling over plain HTTP.
		Secure: r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https"),
	}
}

func (p *Portal) canWrite(role string) bool {
	return slices.ContainsFunc(p.opts.WriteRoles, func(r string) bool { return strings.EqualFold(r, role) })
}

const sessionKey = "portal.session"

// errNoSession is every reason a cookie does not open a session.
var errNoSession = errors.New("no session")

func (p *Portal) open(value string) (sessionClaims, error) {
	var s sessionClaims
	kidText, ctText, ok := strings.Cut(value, ".")
	if !ok {
		return s, errNoSession
	}
	kid, err1 := base64.RawURLEncoding.DecodeString(kidText)
	ct, err2 := base64.RawURLEncoding.DecodeString(ctText)
	if err1 != nil || err2 != nil {
		return s, errNoSession
	}
	plain, err := p.keys.Open(string(kid), ct, sessionAAD)
	if err != nil {
		return s, errNoSession
	}
	if err := json.Unmarshal(plain, &s); err != nil {
		return s, errNoSession
	}
	if time.Now().Unix() >= s.Expires {
		return s, errNoSession
	}
	return s, nil
}

// requireSession opens the cookie and stores its claims where the API's
// handlers read them (httpx.Claims). The role is checked again on every
// request against the current WEBHOOK_WRITE_ROLES.
func (p *Portal) requireSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		ck, err := c.Request().Cookie(CookieName)
		if err != nil {
			return problem.Unauthorized("not signed in to the portal: open it from the application again")
		}
		s, err := p.open(ck.Value)
		if err != nil {
			return problem.Unauthorized("the portal session has expired or is not valid: open the portal from the application again")
		}
		if !p.canWrite(s.Role) {
			return problem.Forbidden(fmt.Sprintf("role %q cannot manage webhooks; the portal is for %s", s.Role, strings.Join(p.opts.WriteRoles, ", ")))
		}
		c.Set(sessionKey, s)
		r := c.Request()
		c.SetRequest(r.WithContext(auth.WithClaims(r.Context(), auth.Claims{
			UserID: s.UserID, OrganizationID: s.OrganizationID, Role: s.Role, ExpiresAt: time.Unix(s.Expires, 0),
		})))
		return next(c)
	}
}
