package main

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/cmd/cli"
	"github.com/xpeditis/notify/pkg/webhook"
)

func TestVerifyCommand(t *testing.T) {
	secret := webhook.GenerateSecret()
	body := `{"id":"evt-1","type":"BOOKING_CREATED","data":{}}`
	now := time.Now()
	sig := webhook.Signature(secret, []byte(body))
	std := webhook.StandardSignature(secret, "d-1", now.Unix(), []byte(body))
	ts := strconv.FormatInt(now.Unix(), 10)

	var out bytes.Buffer
	args := []string{"-webhook-secret", secret, "-signature", sig, "-H", "webhook-id: d-1", "-H", "webhook-timestamp: " + ts, "-H", "webhook-signature: " + std}
	if err := runVerify(context.Background(), args, cli.Stdio{In: strings.NewReader(body), Out: &out, Err: &out}); err != nil {
		t.Fatalf("valid delivery refused: %v", err)
	}
	if !strings.Contains(out.String(), "Standard Webhooks") {
		t.Fatalf("output %q does not say the Standard Webhooks headers were checked", out.String())
	}
	if err := runVerify(context.Background(), []string{"-webhook-secret", secret, "-signature", sig}, cli.Stdio{In: strings.NewReader(body + " "), Out: &out, Err: &out}); err == nil || !strings.Contains(err.Error(), "INVALID") {
		t.Fatalf("tampered body: err = %v, want INVALID", err)
	}
	if err := runVerify(context.Background(), []string{"-signature", sig}, cli.Stdio{In: strings.NewReader(body), Out: &out, Err: &out}); err == nil {
		t.Fatal("missing secret accepted")
	}
}
