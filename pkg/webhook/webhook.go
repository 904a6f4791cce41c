// Package webhook is the signature scheme of Xpeditis Notify's webhook
// deliveries, in one place for the dispatcher that signs and for receivers
// (and `notifyctl verify`) that check.
//
// Every delivery carries two signatures over the exact bytes of the body:
//
//   - X-Webhook-Signature: "sha256=" + hex(HMAC-SHA256(secret, body)), keyed
//     with the secret string as it is: what integrators already verify with
//     crypto.createHmac('sha256', secret).update(rawBody).digest('hex');
//   - the Standard Webhooks headers webhook-id, webhook-timestamp and
//     webhook-signature: "v1," + base64(HMAC-SHA256(key, id "." timestamp
//     "." body)), where key is the base64-decoded part of a "whsec_" secret
//     and the raw bytes of any other secret.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of a delivery.
const (
	HeaderSignature = "X-Webhook-Signature"
	HeaderEvent     = "X-Webhook-Event"
	HeaderID        = "X-Webhook-Id"
	HeaderTimestamp = "X-Webhook-Timestamp"
	HeaderAttempt   = "X-Webhook-Attempt"

	HeaderStdID        = "webhook-id"
	HeaderStdTimestamp = "webhook-timestamp"
	HeaderStdSignature = "webhook-signature"
)

// SecretPrefix marks generated secrets, as Standard Webhooks libraries expect.
const SecretPrefix = "whsec_"

// GenerateSecret returns a new "whsec_" secret holding 32 random bytes.
func GenerateSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// StandardKey is the HMAC key Standard Webhooks derives from a secret.
func StandardKey(secret string) []byte {
	if rest, ok := strings.CutPrefix(secret, SecretPrefix); ok {
		if key, err := base64.StdEncoding.DecodeString(rest); err == nil {
			return key
		}
	}
	return []byte(secret)
}

// Signature is the X-Webhook-Signature value of body.
func Signature(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// StandardSignature is the webhook-signature value of a message.
func StandardSignature(secret, msgID string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, StandardKey(secret))
	mac.Write([]byte(msgID))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Delivery is what identifies one signed request.
type Delivery struct {
	ID        string    // stable across attempts: the receiver's de-duplication key
	Event     string    // webhook event name
	Timestamp time.Time // when this attempt was signed
	Attempt   int       // 1 for the first attempt
}

// SetHeaders signs body and sets every delivery header on h.
func SetHeaders(h http.Header, secret string, d Delivery, body []byte) {
	SetHeadersRotating(h, secret, "", d, body)
}

// SetHeadersRotating signs body during a secret rotation's overlap, when
// previous (the secret being replaced) is not empty: webhook-signature
// carries both signatures, the new one first ("v1,<new> v1,<old>"), so that
// a receiver holding either secret verifies it, and X-Webhook-Signature,
// which carries one value, keeps the previous secret until the overlap
// ends, so that the receivers' one-value check goes on passing until they
// switch. With an empty previous it is SetHeaders.
func SetHeadersRotating(h http.Header, secret, previous string, d Delivery, body []byte) {
	ts := d.Timestamp.Unix()
	tsText := strconv.FormatInt(ts, 10)
	legacy, std := secret, StandardSignature(secret, d.ID, ts, body)
	if previous != "" {
		legacy = previous
		std += " " + StandardSignature(previous, d.ID, ts, body)
	}
	h.Set(HeaderSignature, Signature(legacy, body))
	h.Set(HeaderEvent, d.Event)
	h.Set(HeaderID, d.ID)
	h.Set(HeaderTimestamp, tsText)
	h.Set(HeaderAttempt, strconv.Itoa(d.Attempt))
	// Standard Webhooks names are lower-case; set them verbatim so that the
	// header map keeps that spelling on the wire.
	h[HeaderStdID] = []string{d.ID}
	h[HeaderStdTimestamp] = []string{tsText}
	h[HeaderStdSignature] = []string{std}
}

// Errors of Verify.
var (
	ErrNoSignature  = errors.New("no signature header")
	ErrBadSignature = errors.New("signature does not match")
	ErrTooOld       = errors.New("timestamp outside the tolerance")
)

// VerifyLegacy checks an X-Webhook-Signature value in constant time.
func VerifyLegacy(secret string, body []byte, header string) error {
	if header == "" {
		return ErrNoSignature
	}
	if !hmac.Equal([]byte(Signature(secret, body)), []byte(header)) {
		return ErrBadSignature
	}
	return nil
}

// VerifyStandard checks Standard Webhooks headers: one of the space-separated
// "v1,<base64>" signatures must match, and the timestamp must be within
// tolerance of now (0 skips the check).
func VerifyStandard(secret string, body []byte, msgID, timestamp, signatures string, now time.Time, tolerance time.Duration) error {
	if msgID == "" || timestamp == "" || signatures == "" {
		return ErrNoSignature
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp %q: %w", timestamp, ErrBadSignature)
	}
	if tolerance > 0 {
		if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
			return ErrTooOld
		}
	}
	want := []byte(StandardSignature(secret, msgID, ts, body))
	for _, s := range strings.Fields(signatures) {
		if hmac.Equal([]byte(s), want) {
			return nil
		}
	}
	return ErrBadSignature
}

// Verify checks a received request's headers: the Standard Webhooks
// signature when its headers are present (with timestamp tolerance), and the
// X-Webhook-Signature always.
func Verify(secret string, body []byte, h http.Header, now time.Time, tolerance time.Duration) error {
	if err := VerifyLegacy(secret, body, h.Get(HeaderSignature)); err != nil {
		return fmt.Errorf("%s: %w", HeaderSignature, err)
	}
	if header(h, HeaderStdSignature) == "" {
		return nil
	}
	if err := VerifyStandard(secret, body, header(h, HeaderStdID), header(h, HeaderStdTimestamp), header(h, HeaderStdSignature), now, tolerance); err != nil {
		return fmt.Errorf("%s: %w", HeaderStdSignature, err)
	}
	return nil
}

// header reads a header whether the map holds it canonicalized (as a server
// receives it) or verbatim (as SetHeaders writes it).
func header(h http.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}
