// Package notifyd is the standalone binary: notification-api, the realtime
// gateway and the webhook dispatcher in one process, on one HTTP port, over
// an embedded NATS server whose JetStream store lives in DATA_DIR and which
// also listens on NATS_LISTEN for local producers.
package notifyd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go"

	"github.com/xpeditis/notify/deploy/standalone/demo"
	"github.com/xpeditis/notify/pkg/app"
	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/logx"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/netx"
	"github.com/xpeditis/notify/services/notification-api/notificationapi"
	"github.com/xpeditis/notify/services/realtime-gateway/realtimegateway"
	"github.com/xpeditis/notify/services/webhook-dispatcher/webhookdispatcher"
)

// Config is notifyd's own configuration.
type Config struct {
	Mode       string // NOTIFY_MODE: development (default) or production
	DataDir    string // DATA_DIR
	NATSListen string // NATS_LISTEN; "off" listens nowhere
	// NATSListenNKeys are the public NKeys of the producers allowed on
	// NATS_LISTEN (NATS_LISTEN_NKEYS). Empty in production: one is made
	// on first start, its seed kept in DATA_DIR (ProducerSeedFile).
	NATSListenNKeys []string
}

// ProducerSeedFile is where production notifyd keeps the seed of the
// producer NKey it made, under DATA_DIR.
const ProducerSeedFile = "nats-producer.nk"

// Development reports whether development conveniences are on.
func (c Config) Development() bool { return c.Mode == "development" }

// Main reads the environment and runs until ctx ends; once ready, it
// prints where to reach notifyd on out, and it logs on logOut.
func Main(ctx context.Context, out, logOut io.Writer) error {
	return Run(ctx, config.FromOS(), logOut, RunOptions{ReadyOut: out})
}

// RunOptions let tests serve notifyd on a listener of their own.
type RunOptions struct {
	Listener net.Listener      // served instead of HTTP_ADDR when set
	Ready    func(addr string) // called once the HTTP server accepts requests
	ReadyOut io.Writer         // when set, gets the URLs to open once ready (see readyMessage)
}

// Development defaults of the listen addresses: loopback only, since
// development mode hands out tokens to anyone who asks.
const (
	devHTTPAddr      = "127.0.0.1:8080"
	defaultNATSListn = "127.0.0.1:4223"
)

// Run runs notifyd configured from base until ctx ends.
func Run(ctx context.Context, base *config.Env, logOut io.Writer, o RunOptions) error {
	mode := base.String("NOTIFY_MODE", "development")
	env := base
	dataDir := base.String("DATA_DIR", "./data")
	if mode == "development" {
		webhookKey, err := devWebhookKey(dataDir)
		if err != nil {
			return fmt.Errorf("development webhook secrets key: %w", err)
		}
		env = base.WithDefaults(map[string]string{
			"HTTP_ADDR":                     devHTTPAddr,
			"JWT_SECRET":                    auth.DevSecret,
			"WEBHOOK_SECRETS_KEYS":          webhookKey,
			"WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
			"GATEWAY_ALLOWED_ORIGINS":       "*",
			"API_ALLOWED_ORIGINS":           "*",
		}).ForDevelopment()
	}
	cfg := Config{Mode: mode, DataDir: dataDir, NATSListen: env.String("NATS_LISTEN", defaultNATSListn), NATSListenNKeys: env.List("NATS_LISTEN_NKEYS", nil)}
	if mode != "development" && mode != "production" {
		env.Check(fmt.Errorf("NOTIFY_MODE: %q is not development or production", mode))
	}
	common := config.ReadCommon(env, true, false)
	apiCfg := notificationapi.ReadConfig(env)
	gatewayCfg := realtimegateway.ReadConfig(env)
	hookCfg := webhookdispatcher.ReadConfig(env)
	if err := env.Err(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := logx.New(logOut, common.LogLevel).With("service", "notifyd")
	if cfg.Development() {
		log.Warn("DEVELOPMENT MODE: do not expose this process; set NOTIFY_MODE=production for real deployments")
		if common.JWT.Secret == auth.DevSecret {
			log.Warn("JWT_SECRET is not set: using the public development secret (notifyctl token uses it too)")
		}
		// WEBHOOK_ALLOW_PRIVATE_TARGETS is warned about by the dispatcher, once.
		if base.String("HTTP_ADDR", "") == "" && o.Listener == nil {
			log.Info("development mode listens on loopback only: set HTTP_ADDR=:8080 to serve other machines (they could then mint tokens on the demo page)", "addr", devHTTPAddr)
		}
		if base.String("WEBHOOK_SECRETS_KEYS", "") == "" {
			log.Warn("WEBHOOK_SECRETS_KEYS is not set: webhook secrets are encrypted with a development key kept in " + filepath.Join(cfg.DataDir, devWebhookKeyFile))
		}
	}

	natsOpts := []nats.Option{}
	producerURL := "" // where producers publish, when this process runs the NATS server
	if common.NATSURL == "" {
		if common.NATSAuth != (config.NATSAuth{}) {
			log.Warn("NATS_URL is empty, so NATS is embedded: the NATS_CREDS, NATS_NKEY_SEED, NATS_USER, NATS_TOKEN and NATS_TLS_* client settings are ignored (producers on NATS_LISTEN use NATS_LISTEN_NKEYS)")
			common.NATSAuth = config.NATSAuth{}
		}
		listen := cfg.NATSListen
		if listen == "off" {
			listen = ""
		}
		if err := checkListen("NATS_LISTEN", listen); err != nil {
			return err
		}
		auth, err := cfg.embeddedAuth(listen != "", log)
		if err != nil {
			return err
		}
		srv, err := natsx.RunEmbedded(natsx.EmbeddedOptions{StoreDir: filepath.Join(cfg.DataDir, "jetstream"), Listen: listen, Name: "notifyd", Auth: auth})
		if err != nil {
			return fmt.Errorf("NATS_LISTEN=%s: %w", listen, err)
		}
		defer srv.WaitForShutdown()
		defer srv.Shutdown()
		natsOpts = append(natsOpts, nats.InProcessServer(srv))
		if auth != nil {
			natsOpts = append(natsOpts, auth.InProcess())
		}
		if listen != "" {
			how := "none (development)"
			if auth != nil {
				how = "producer NKeys (may publish events.> only)"
			}
			producerURL = srv.ClientURL()
			log.Info("embedded NATS listening for producers", "url", producerURL, "auth", how)
		}
	}
	ready := o.Ready
	if o.ReadyOut != nil {
		ready = func(addr string) {
			fmt.Fprint(o.ReadyOut, readyMessage(cfg, addr, producerURL))
			if o.Ready != nil {
				o.Ready(addr)
			}
		}
	}
	return app.Run(ctx, app.Options{
		Name:     "notifyd",
		Common:   common,
		Log:      log,
		NeedDB:   true,
		NATSOpts: natsOpts,
		Services: []app.Builder{
			notificationapi.New(apiCfg),
			realtimegateway.New(gatewayCfg),
			webhookdispatcher.New(hookCfg),
		},
		Listener: o.Listener,
		Ready:    ready,
		Extra:    cfg.extraRoutes(common, log),
	})
}

// extraRoutes adds the demo page and its development endpoints, in
// development mode only: they hand out tokens to anyone who asks.
func (c Config) extraRoutes(common config.Common, log *slog.Logger) func(e *echo.Echo, d app.Deps) {
	if !c.Development() {
		return nil
	}
	return func(e *echo.Echo, d app.Deps) {
		h, err := demo.New(common.JWT.Secret, d.Verifier, d.JS, log.With("component", "demo"))
		if err != nil {
			log.Warn("demo page disabled", "err", err)
			return
		}
		h.Register(e)
		log.Info("demo page at / (development mode)")
	}
}

// embeddedAuth decides who may connect to the embedded NATS server. In
// development with no NATS_LISTEN_NKEYS it is open (nil): the listener is
// meant for loopback. Otherwise the services of this process sign in with
// a key held in memory, and producers with the NKeys of NATS_LISTEN_NKEYS
// or, when none is given, with the one whose seed notifyd keeps in
// DATA_DIR, made on first start. The seed is never logged: the operator is
// told where the file is.
func (c Config) embeddedAuth(listening bool, log *slog.Logger) (*natsx.EmbeddedAuth, error) {
	producers := c.NATSListenNKeys
	if c.Development() && len(producers) == 0 {
		return nil, nil
	}
	if listening && len(producers) == 0 {
		path := filepath.Join(c.DataDir, ProducerSeedFile)
		pub, created, err := natsx.ProducerSeed(path)
		if err != nil {
			return nil, fmt.Errorf("embedded nats: %w", err)
		}
		if created {
			log.Warn("embedded NATS: made a producer NKey; producers connect with its seed, e.g. NATS_NKEY_SEED="+path+" notifyctl publish …; keep the file secret (mode 0600) or set NATS_LISTEN_NKEYS to your producers' public keys", "seed_file", path, "public_key", pub)
		} else {
			log.Info("embedded NATS: producers sign in with the NKey seed in "+path, "seed_file", path, "public_key", pub)
		}
		return natsx.NewEmbeddedAuth([]string{pub})
	}
	auth, err := natsx.NewEmbeddedAuth(producers)
	if err != nil {
		return nil, fmt.Errorf("NATS_LISTEN_NKEYS: %w", err)
	}
	return auth, nil
}

// checkListen fails early, naming the variable and the port's holder, when
// addr cannot be listened on: nats-server keeps its own listen error to
// itself until its readiness timeout.
func checkListen(variable, addr string) error {
	if addr == "" {
		return nil
	}
	if _, port, err := net.SplitHostPort(addr); err == nil && port == "0" {
		return nil // any free port
	}
	ln, err := netx.Listen(variable, addr)
	if err != nil {
		return err
	}
	return ln.Close()
}

// readyMessage tells a person where everything is, once notifyd serves:
// the API, the demo page, the webhook portal, the realtime endpoints and the
// producer listener.
func readyMessage(c Config, httpAddr, producerURL string) string {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		host, port = httpAddr, ""
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() || host == "" {
		host = "localhost"
	}
	base := "http://" + net.JoinHostPort(host, port)
	var b strings.Builder
	fmt.Fprintf(&b, "notifyd is ready (%s mode)\n", c.Mode)
	fmt.Fprintf(&b, "  REST API    %s/api/v1/notifications  (OpenAPI: %s/api/v1/openapi.json)\n", base, base)
	if c.Development() {
		fmt.Fprintf(&b, "  demo page   %s/\n", base)
	}
	fmt.Fprintf(&b, "  webhooks    %s/portal/  (the portal; your application opens it as %s/portal/#token=<the user's JWT>)\n", base, base)
	fmt.Fprintf(&b, "  Socket.IO   %s  (socket.io-client: io(%q, { auth: { token } }); plain WebSocket: %s/ws)\n", base+"/socket.io/", base, "ws"+strings.TrimPrefix(base, "http"))
	if producerURL != "" {
		fmt.Fprintf(&b, "  producers   %s  (NATS_URL of notifyctl and the backend services)\n", producerURL)
	}
	return b.String()
}
