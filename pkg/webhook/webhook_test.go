package webhook

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks specification's published example.
func TestStandardSignatureKnownAnswer(t *testing.T) {
	tests := []struct {
		name, secret, id string
		ts               int64
		body, want       string
	}{
		{
			name: "specification example", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			id: "msg_p5jXN8AQM9LWM0D4loKWxJek", ts: 1614265330, body: `{"test": 2432232314}`,
			want: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
		},
		{
			// A secret without the prefix is used as raw bytes (expected value
			// from: printf 'd-1.1700000000.{"a":1}' | openssl dgst -sha256 -hmac my-plain-secret-123 -binary | base64).
			name: "raw secret", secret: "my-plain-secret-123", id: "d-1", ts: 1700000000, body: `{"a":1}`,
			want: "v1,OlyQrwPHsobNbTykslBX1YesO73s/NYTwLsMkAavOKY=",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := StandardSignature(tt.secret, tt.id, tt.ts, []byte(tt.body))
			if got != tt.want {
				t.Fatalf("signature = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestLegacySignatureKnownAnswer(t *testing.T) {
	// Expected value from: printf '{"id":"1"}' | openssl dgst -sha256 -hmac whsec_abc -hex
	// The whole secret string, prefix included, is the key: that is what
	// crypto.createHmac('sha256', secret) does with a string.
	got := Signature("whsec_abc", []byte(`{"id":"1"}`))
	if want := "sha256=5fc151d892b7a51a2a82193149567b586de5350a5e2adb29bf51fea80c00cf91"; got != want {
		t.Fatalf("signature = %s, want %s", got, want)
	}
}

func TestVerifyRoundTripAndTamper(t *testing.T) {
	secret := GenerateSecret()
	if !strings.HasPrefix(secret, SecretPrefix) || len(StandardKey(secret)) != 32 {
		t.Fatalf("generated secret %q has the wrong form", secret)
	}
	body := []byte(`{"id":"evt-1","type":"BOOKING_CREATED"}`)
	now := time.Unix(1_800_000_000, 0)
	h := http.Header{}
	SetHeaders(h, secret, Delivery{ID: "d-1", Event: "BOOKING_CREATED", Timestamp: now, Attempt: 2}, body)
	if err := Verify(secret, body, h, now, 5*time.Minute); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if h.Get(HeaderAttempt) != "2" || h.Get(HeaderID) != "d-1" || h.Get(HeaderEvent) != "BOOKING_CREATED" {
		t.Fatalf("headers = %v", h)
	}
	cases := map[string]func() error{
		"tampered body": func() error { return Verify(secret, append([]byte{' '}, body...), h, now, time.Minute) },
		"other secret":  func() error { return Verify(GenerateSecret(), body, h, now, time.Minute) },
		"replayed late": func() error { return Verify(secret, body, h, now.Add(10*time.Minute), 5*time.Minute) },
		"no header":     func() error { return Verify(secret, body, http.Header{}, now, time.Minute) },
	}
	for name, f := range cases {
		if err := f(); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	if err := VerifyStandard(secret, body, "d-1", header(h, HeaderStdTimestamp), header(h, HeaderStdSignature), now.Add(10*time.Minute), 5*time.Minute); !errors.Is(err, ErrTooOld) {
		t.Errorf("late timestamp: err = %v, want ErrTooOld", err)
	}
}

// During a rotation's overlap the Standard Webhooks header carries the new
// signature then the old one, and X-Webhook-Signature the old secret's.
// Expected values: the specification example above for the new secret, and
// printf 'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}' | openssl dgst -sha256 -hmac my-plain-secret-123 -binary | base64
// printf '{"test": 2432232314}' | openssl dgst -sha256 -hmac my-plain-secret-123 -hex
// for the previous one.
func TestRotatingHeadersKnownAnswer(t *testing.T) {
	body := []byte(`{"test": 2432232314}`)
	d := Delivery{ID: "msg_p5jXN8AQM9LWM0D4loKWxJek", Event: "E", Timestamp: time.Unix(1614265330, 0), Attempt: 1}
	h := http.Header{}
	SetHeadersRotating(h, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "my-plain-secret-123", d, body)
	if got, want := header(h, HeaderStdSignature), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,e3V173Igt0/+L0Mo/MjAIVYfvxvjnOWVad0zHNQEqtw="; got != want {
		t.Fatalf("webhook-signature = %s, want %s", got, want)
	}
	if got, want := h.Get(HeaderSignature), "sha256=77c62738b05f22fe682c67b106d62f538ce6a14a738d9eaa3236831100d37a16"; got != want {
		t.Fatalf("X-Webhook-Signature = %s, want the previous secret's %s", got, want)
	}
	// A receiver still on the previous secret verifies both headers.
	if err := Verify("my-plain-secret-123", body, h, d.Timestamp, time.Minute); err != nil {
		t.Fatalf("verify with the previous secret: %v", err)
	}
}
