package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/xpeditis/notify/pkg/webhook"
)

// runVerify checks a received webhook delivery the way a receiver should:
// the X-Webhook-Signature over the raw body and, when given, the Standard
// Webhooks headers.
func runVerify(args []string, stdin io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	secret := fs.String("secret", os.Getenv("WEBHOOK_SECRET"), "the webhook's secret (default: $WEBHOOK_SECRET)")
	bodyFile := fs.String("body", "-", "file with the raw request body; - reads standard input")
	signature := fs.String("signature", "", "X-Webhook-Signature header value (sha256=<hex>)")
	headers := headerFlags{}
	fs.Var(&headers, "H", "a received header 'Name: value' (repeatable), e.g. -H 'webhook-signature: v1,...'")
	tolerance := fs.Duration("tolerance", 5*time.Minute, "accepted age of webhook-timestamp; 0 accepts any")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *secret == "" {
		return errors.New("verify: -secret (or $WEBHOOK_SECRET) is required")
	}
	h := http.Header(headers)
	if *signature != "" {
		h.Set(webhook.HeaderSignature, *signature)
	}
	if h.Get(webhook.HeaderSignature) == "" {
		return errors.New("verify: give -signature or -H 'X-Webhook-Signature: sha256=...'")
	}
	var body []byte
	var err error
	if *bodyFile == "-" {
		body, err = io.ReadAll(io.LimitReader(stdin, 16<<20))
	} else {
		body, err = os.ReadFile(*bodyFile)
	}
	if err != nil {
		return fmt.Errorf("verify: read body: %w", err)
	}
	if err := webhook.Verify(*secret, body, h, time.Now(), *tolerance); err != nil {
		return fmt.Errorf("verify: INVALID: %w", err)
	}
	checked := webhook.HeaderSignature
	if h.Get(webhook.HeaderStdSignature) != "" {
		checked += " and Standard Webhooks headers"
	}
	fmt.Fprintf(out, "valid: %s verified\n", checked)
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
