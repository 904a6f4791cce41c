package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/cmd/cli"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/webhook"
)

// Bounds of listen's receiver.
const (
	listenMaxBody      = 1 << 20 // a delivery body (events are at most 256 KiB)
	listenMaxAnswer    = 64 << 10
	listenForwardLimit = 30 * time.Second
)

// hopByHop are the headers that describe one connection, not the request:
// they are not forwarded (RFC 9110 section 7.6.1).
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// runListen registers a temporary webhook on a development notifyd that
// points at a receiver of its own, forwards every delivery to the
// developer's local URL with its headers, prints one line per delivery with
// the verdict of the signature check, and deletes the webhook on exit.
func runListen(ctx context.Context, args []string, std cli.Stdio) error {
	c := cli.New("notifyctl", "listen", "Registers a temporary webhook on a development notifyd, forwards each delivery to\n"+
		"-forward-to with its original headers and body, prints one line per delivery with\n"+
		"the signature check, and deletes the webhook on Ctrl-C. Refuses a production\n"+
		"deployment. The webhook's secret is -webhook-secret when given, else a new one,\n"+
		"printed once on standard error for your app to verify with.",
		`notifyctl listen -forward-to http://localhost:3000/hook`,
		`WEBHOOK_SECRET=whsec_... notifyctl listen -forward-to http://localhost:3000/hook -org org-42 -events BOOKING_CREATED,PAYMENT_FAILED`,
		`notifyctl listen -url http://127.0.0.1:8080 -listen 0.0.0.0:4000 -public-url http://host.docker.internal:4000/ -forward-to http://localhost:3000/hook`)
	var server, secret, hookSecret string
	c.FromEnv(&server, "url", "NOTIFY_URL", "http://127.0.0.1:8080", "notifyd's development address http://127.0.0.1:8080", "notifyd's base URL")
	c.SecretFlag(&secret)
	c.FromEnv(&hookSecret, "webhook-secret", "WEBHOOK_SECRET", "", "a new secret, printed once", "the temporary webhook's secret")
	forward := c.FS.String("forward-to", "", "local URL every delivery is forwarded to (required)")
	org := c.FS.String("org", "org-1", "organization whose events are received")
	user := c.FS.String("user", "notifyctl-listen", "user id of the token that registers the webhook")
	role := c.FS.String("role", "ADMIN", "role of that token: one that may manage webhooks")
	events := c.FS.String("events", "", "comma-separated webhook events (default: all of "+strings.Join(contract.WebhookEvents(), ", ")+")")
	listen := c.FS.String("listen", "127.0.0.1:0", "address of the receiver the dispatcher posts to (port 0: any free port)")
	public := c.FS.String("public-url", "", "URL the dispatcher reaches the receiver at (default: http://<-listen address>/)")
	if err := c.Parse(args, std); err != nil {
		return err
	}
	target, err := url.Parse(*forward)
	if *forward == "" || err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return cli.Usagef("listen: -forward-to must be an http:// or https:// URL, e.g. http://localhost:3000/hook")
	}
	names := contract.WebhookEvents()
	if *events != "" {
		names = strings.Split(*events, ",")
	}
	l := &listener{server: strings.TrimRight(server, "/"), forward: target.String(), out: std.Out, client: &http.Client{Timeout: listenForwardLimit}}
	if err := l.checkDevelopment(ctx); err != nil {
		return err
	}
	if l.token, err = auth.Mint(secret, auth.MintOptions{UserID: *user, OrganizationID: *org, Role: *role, TTL: 24 * time.Hour}); err != nil {
		return err
	}
	generated := hookSecret == ""
	if generated {
		hookSecret = webhook.GenerateSecret()
	}
	l.secret = hookSecret

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: cannot listen on -listen %s: %w", *listen, err)
	}
	receiverURL := *public
	if receiverURL == "" {
		receiverURL = "http://" + ln.Addr().String() + "/"
	}
	srv := &http.Server{Handler: l, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()

	id, err := l.register(ctx, receiverURL, names, *org)
	if err != nil {
		return err
	}
	// Deleted on every way out once registered, Ctrl-C included (ctx ends).
	defer l.unregister(id, std.Err)
	fmt.Fprintf(std.Err, "listening: %s's %s deliveries → %s (webhook %s at %s); Ctrl-C deletes the webhook and stops\n",
		*org, strings.Join(names, ", "), l.forward, id, receiverURL)
	if generated {
		fmt.Fprintf(std.Err, "webhook secret (verify with it in your app; the webhook is deleted on exit): %s\n", hookSecret)
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-served:
		return fmt.Errorf("listen: the receiver stopped: %w", err)
	}
}

// listener is listen's receiver and its calls to notifyd.
type listener struct {
	server, forward, token, secret string
	out                            io.Writer
	client                         *http.Client
}

// checkDevelopment refuses anything but a notifyd in development mode,
// which alone serves /dev/config: listen is for a developer's machine.
func (l *listener) checkDevelopment(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.server+"/dev/config", nil)
	if err != nil {
		return cli.Usagef("listen: -url %q: %v", l.server, err)
	}
	res, err := l.client.Do(req)
	if err != nil {
		return fmt.Errorf("listen: cannot reach notifyd at %s (is it running? set -url or $NOTIFY_URL): %w", l.server, err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("listen: %s is not a notifyd in development mode (GET /dev/config answered %d): listen registers webhooks on development deployments only", l.server, res.StatusCode)
	}
	return nil
}

// call sends a JSON request to the webhook API and decodes the answer;
// an error answer becomes an error carrying its detail.
func (l *listener) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, l.server+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+l.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := l.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(res.Body, listenMaxAnswer))
	if res.StatusCode >= 300 {
		var p struct{ Detail string }
		if json.Unmarshal(raw, &p) != nil || p.Detail == "" {
			p.Detail = strings.TrimSpace(string(raw))
		}
		return fmt.Errorf("%s %s: %d: %s", method, path, res.StatusCode, p.Detail)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func (l *listener) register(ctx context.Context, receiverURL string, events []string, org string) (string, error) {
	var w struct{ ID string }
	err := l.call(ctx, http.MethodPost, "/api/v1/webhooks", map[string]any{
		"url": receiverURL, "events": events, "secret": l.secret, "description": "notifyctl listen (temporary)",
	}, &w)
	switch {
	case err != nil && strings.Contains(err.Error(), "target not allowed"):
		return "", fmt.Errorf("listen: notifyd refuses the receiver's address: %w; in development notifyd allows loopback targets (WEBHOOK_ALLOW_PRIVATE_TARGETS=true, its default there) or list it in WEBHOOK_ALLOW_TARGETS, e.g. 127.0.0.1/32", err)
	case err != nil:
		return "", fmt.Errorf("listen: register the webhook for %s: %w", org, err)
	}
	return w.ID, nil
}

// unregister deletes the webhook; ctx has ended by then, so it gets its own.
func (l *listener) unregister(id string, errOut io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.call(ctx, http.MethodDelete, "/api/v1/webhooks/"+id, nil, nil); err != nil {
		fmt.Fprintf(errOut, "could not delete webhook %s: %v; delete it with DELETE /api/v1/webhooks/%s\n", id, err, id)
		return
	}
	fmt.Fprintf(errOut, "deleted webhook %s\n", id)
}

// ServeHTTP takes one delivery: checks its signature, forwards it, answers
// the dispatcher with the local app's answer, and prints one line.
func (l *listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, listenMaxBody))
	if err != nil {
		http.Error(w, "body too large or cut short", http.StatusRequestEntityTooLarge)
		return
	}
	verdict := "signature ok"
	if err := webhook.Verify(l.secret, body, r.Header, time.Now(), 5*time.Minute); err != nil {
		verdict = "signature INVALID (" + err.Error() + ")"
	}
	result := l.relay(r, body, w)
	fmt.Fprintf(l.out, "%s %-17s %s attempt %s  %s  → %s (%d ms)\n", start.Format("15:04:05"), r.Header.Get(webhook.HeaderEvent),
		r.Header.Get(webhook.HeaderID), r.Header.Get(webhook.HeaderAttempt), verdict, result, time.Since(start).Milliseconds())
}

// relay forwards the delivery and writes the local app's answer back to
// the dispatcher (a 502 when the app cannot be reached), returning what to
// print.
func (l *listener) relay(r *http.Request, body []byte, w http.ResponseWriter) string {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, l.forward, bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return "cannot forward: " + err.Error()
	}
	for k, vs := range r.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	for _, k := range hopByHop {
		req.Header.Del(k)
	}
	res, err := l.client.Do(req)
	if err != nil {
		http.Error(w, "notifyctl listen: cannot reach "+l.forward+": "+err.Error(), http.StatusBadGateway)
		return "cannot reach " + l.forward + ": " + err.Error() + " (answered 502)"
	}
	defer res.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(res.Body, listenMaxAnswer))
	if ct := res.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(res.StatusCode)
	_, _ = w.Write(answer)
	return fmt.Sprintf("%d %s", res.StatusCode, http.StatusText(res.StatusCode))
}
