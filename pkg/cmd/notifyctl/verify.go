package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/xpeditis/notify/pkg/cmd/cli"
	"github.com/xpeditis/notify/pkg/webhook"
)

// runVerify checks a received webhook delivery the way a receiver should:
// the X-Webhook-Signature over the raw body and, when given, the Standard
// Webhooks headers.
func runVerify(_ context.Context, args []string, std cli.Stdio) error {
	c := cli.New("notifyctl", "verify", "Checks a received webhook delivery: X-Webhook-Signature over the raw body and,\nwhen given, the Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature).",
		`notifyctl verify -webhook-secret "$WEBHOOK_SECRET" -signature 'sha256=9f2c…' < body.json`,
		`WEBHOOK_SECRET=whsec_... notifyctl verify -body body.json -H 'X-Webhook-Signature: sha256=9f2c…' -H 'webhook-id: 0193…' -H 'webhook-timestamp: 1764403200' -H 'webhook-signature: v1,K5o…'`)
	var secret string
	c.FromEnv(&secret, "webhook-secret", "WEBHOOK_SECRET", "", "", "the webhook's secret, as shown once when it was created")
	bodyFile := c.FS.String("body", "-", "file with the raw request body; - reads standard input")
	signature := c.FS.String("signature", "", "X-Webhook-Signature header value (sha256=<hex>)")
	headers := headerFlags{}
	c.FS.Var(&headers, "H", "a received header 'Name: value' (repeatable), e.g. -H 'webhook-signature: v1,...'")
	tolerance := c.FS.Duration("tolerance", 5*time.Minute, "accepted age of webhook-timestamp; 0 accepts any")
	if err := c.Parse(args, std); err != nil {
		return err
	}
	if secret == "" {
		return cli.Usagef("verify: -webhook-secret (or $WEBHOOK_SECRET) is required")
	}
	h := http.Header(headers)
	if *signature != "" {
		h.Set(webhook.HeaderSignature, *signature)
	}
	if h.Get(webhook.HeaderSignature) == "" {
		return cli.Usagef("verify: give -signature or -H 'X-Webhook-Signature: sha256=...'")
	}
	var body []byte
	var err error
	if *bodyFile == "-" {
		body, err = io.ReadAll(io.LimitReader(std.In, 16<<20))
	} else {
		body, err = os.ReadFile(*bodyFile)
	}
	if err != nil {
		return fmt.Errorf("verify: read body: %w", err)
	}
	if err := webhook.Verify(secret, body, h, time.Now(), *tolerance); err != nil {
		return fmt.Errorf("verify: INVALID: %w", err)
	}
	checked := webhook.HeaderSignature
	if h.Get(webhook.HeaderStdSignature) != "" {
		checked += " and Standard Webhooks headers"
	}
	fmt.Fprintf(std.Out, "valid: %s verified\n", checked)
	return nil
}

// headerFlags collects -H "Name: value" flags.
type headerFlags http.Header

func (h *headerFlags) String() string { return "" }

func (h *headerFlags) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("header %q is not 'Name: value'", s)
	}
	if *h == nil {
		*h = headerFlags{}
	}
	http.Header(*h).Add(strings.TrimSpace(name), strings.TrimSpace(value))
	return nil
}
