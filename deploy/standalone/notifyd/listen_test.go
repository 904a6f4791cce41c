package notifyd_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/pkg/webhook"
)

// buildNotifyctl builds the real binary, so that the test sends it a real
// SIGINT as Ctrl-C does.
func buildNotifyctl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "notifyctl")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/xpeditis/notify/pkg/cmd/notifyctl").CombinedOutput()
	if err != nil {
		t.Fatalf("go build notifyctl: %v\n%s", err, out)
	}
	return bin
}

// lines collects a stream's lines for the test to wait on.
type lines struct {
	mu  sync.Mutex
	all []string
}

func (l *lines) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l.mu.Lock()
		l.all = append(l.all, sc.Text())
		l.mu.Unlock()
	}
}

func (l *lines) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "\n")
}

// waitFor returns the first line matching re.
func (l *lines) waitFor(t *testing.T, what string, re *regexp.Regexp) string {
	t.Helper()
	var found string
	testkit.WaitFor(t, 20*time.Second, what, func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, s := range l.all {
			if re.MatchString(s) {
				found = s
				return nil
			}
		}
		return fmt.Errorf("no line matches %s in:\n%s", re, strings.Join(l.all, "\n"))
	})
	return found
}

// apiCall is request with the answer decoded into out.
func apiCall(t *testing.T, method, url, tok string, body, out any) int {
	t.Helper()
	code, raw := request(t, method, url, tok, body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode: %v", method, url, err)
		}
	}
	return code
}

type listedWebhooks struct {
	Data []struct {
		ID          string `json:"id"`
		URL         string `json:"url"`
		Description string `json:"description"`
	} `json:"data"`
}

// notifyctl listen against a real notifyd in development mode: it
// registers a webhook pointing at its own receiver, forwards a real
// delivery to the developer's app with the original headers (which verify
// with the secret), relays the app's answer to the dispatcher, prints one
// line per delivery with the signature verdict, and deletes the webhook on
// Ctrl-C.
func TestNotifyctlListenForwardsDeliveriesAndDeletesTheWebhookOnCtrlC(t *testing.T) {
	bin := buildNotifyctl(t)
	base := startNotifyd(t, "development")
	org := testkit.UniqueID("org")
	tok, err := auth.Mint(testkit.JWTSecret, auth.MintOptions{UserID: "dev-1", OrganizationID: org, Role: "USER", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}

	type got struct {
		header http.Header
		body   []byte
	}
	app := make(chan got, 4)
	appSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/hook" {
			http.NotFound(w, r)
			return
		}
		app <- got{r.Header.Clone(), body}
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "created-by-app")
	}))
	t.Cleanup(appSrv.Close)

	const secret = "whsec_dGhpcyBpcyBhIHRlc3Qgc2VjcmV0IGZvciBsaXN0ZW4="
	cmd := exec.Command(bin, "listen", "-url", base, "-forward-to", appSrv.URL+"/hook", "-org", org, "-events", "BOOKING_CREATED,PAYMENT_FAILED")
	cmd.Env = append(os.Environ(), "JWT_SECRET="+testkit.JWTSecret, "WEBHOOK_SECRET="+secret)
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out, errOut lines
	go out.read(stdout)
	go errOut.read(stderr)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	ready := errOut.waitFor(t, "listen to be ready", regexp.MustCompile(`^listening: `))
	receiver := regexp.MustCompile(`at (http://127\.0\.0\.1:\d+/)\)`).FindStringSubmatch(ready)
	if receiver == nil {
		t.Fatalf("no receiver URL in %q", ready)
	}
	if strings.Contains(errOut.text(), secret) {
		t.Fatal("listen printed a secret it was given")
	}

	var hooks listedWebhooks
	apiCall(t, http.MethodGet, base+"/api/v1/webhooks", tok, nil, &hooks)
	if len(hooks.Data) != 1 || hooks.Data[0].URL != receiver[1] {
		t.Fatalf("webhooks of %s: %+v, want one to %s", org, hooks.Data, receiver[1])
	}
	hookID := hooks.Data[0].ID

	// A real event, published as a backend service would (the demo's
	// development endpoint puts it on EVENTS).
	var ev struct{ ID string }
	if code := apiCall(t, http.MethodPost, base+"/dev/events", tok, map[string]any{"type": "BOOKING_CREATED", "data": map[string]any{"bookingId": "BK-9"}}, &ev); code != http.StatusAccepted {
		t.Fatalf("publish: %d", code)
	}
	var g got
	select {
	case g = <-app:
	case <-time.After(20 * time.Second):
		t.Fatalf("the app got nothing within 20s; listen said:\n%s\n%s", out.text(), errOut.text())
	}
	if err := webhook.Verify(secret, g.body, g.header, time.Now(), 5*time.Minute); err != nil {
		t.Fatalf("the forwarded delivery does not verify with its original headers: %v (headers %v)", err, g.header)
	}
	var body struct{ ID, Type string }
	if err := json.Unmarshal(g.body, &body); err != nil || body.ID != ev.ID || body.Type != "BOOKING_CREATED" || g.header.Get("X-Webhook-Event") != "BOOKING_CREATED" {
		t.Fatalf("forwarded body %s, headers %v", g.body, g.header)
	}
	deliveryID := g.header.Get("X-Webhook-Id")
	out.waitFor(t, "a line for the delivery", regexp.MustCompile(`BOOKING_CREATED +`+regexp.QuoteMeta(deliveryID)+` attempt 1  signature ok  → 201 Created \(\d+ ms\)$`))

	// The dispatcher recorded the app's answer, relayed by listen.
	testkit.WaitFor(t, 10*time.Second, "the delivery to be recorded with the app's answer", func() error {
		var ds struct {
			Data []struct {
				ID       string
				Status   string
				Attempts []struct {
					StatusCode      int
					ResponseExcerpt string
				}
			}
		}
		apiCall(t, http.MethodGet, base+"/api/v1/webhooks/"+hookID+"/deliveries", tok, nil, &ds)
		if len(ds.Data) != 1 || ds.Data[0].ID != deliveryID || ds.Data[0].Status != "SUCCEEDED" ||
			ds.Data[0].Attempts[0].StatusCode != 201 || ds.Data[0].Attempts[0].ResponseExcerpt != "created-by-app" {
			return fmt.Errorf("deliveries %+v", ds.Data)
		}
		return nil
	})

	// A request that is not signed with the secret is forwarded too (the
	// app decides) but the line says it does not verify.
	forged, _ := http.NewRequest(http.MethodPost, receiver[1], strings.NewReader(`{"id":"forged"}`))
	forged.Header.Set("X-Webhook-Event", "PAYMENT_FAILED")
	forged.Header.Set("X-Webhook-Id", "forged-1")
	forged.Header.Set("X-Webhook-Attempt", "1")
	forged.Header.Set("X-Webhook-Signature", "sha256=00")
	res, err := http.DefaultClient.Do(forged)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	<-app
	out.waitFor(t, "a line for the forged request", regexp.MustCompile(`PAYMENT_FAILED +forged-1 attempt 1  signature INVALID \(X-Webhook-Signature: .+\)  → 201 Created`))

	// Ctrl-C: the webhook is deleted and listen exits 0.
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("listen exited with %v after Ctrl-C:\n%s", err, errOut.text())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("listen did not exit within 20s of Ctrl-C")
	}
	if !strings.Contains(errOut.text(), "deleted webhook "+hookID) {
		t.Fatalf("stderr:\n%s", errOut.text())
	}
	hooks = listedWebhooks{}
	apiCall(t, http.MethodGet, base+"/api/v1/webhooks", tok, nil, &hooks)
	if len(hooks.Data) != 0 {
		t.Fatalf("webhooks left after Ctrl-C: %+v", hooks.Data)
	}
}

// Against a production deployment listen registers nothing and says why.
func TestNotifyctlListenRefusesProduction(t *testing.T) {
	bin := buildNotifyctl(t)
	base := startNotifyd(t, "production")
	org := testkit.UniqueID("org")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "listen", "-url", base, "-forward-to", "http://localhost:3000/hook", "-org", org)
	cmd.Env = append(os.Environ(), "JWT_SECRET="+testkit.JWTSecret)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr.String(), "is not a notifyd in development mode (GET /dev/config answered 404)") {
		t.Fatalf("listen against production: %v\n%s", err, stderr.String())
	}
	tok, _ := auth.Mint(testkit.JWTSecret, auth.MintOptions{UserID: "u", OrganizationID: org, Role: "ADMIN", TTL: time.Hour})
	var hooks listedWebhooks
	apiCall(t, http.MethodGet, base+"/api/v1/webhooks", tok, nil, &hooks)
	if len(hooks.Data) != 0 {
		t.Fatalf("listen registered %+v on production", hooks.Data)
	}
}
