// Package secrets encrypts webhook signing secrets at rest with AES-256-GCM.
// Keys come from the environment as a list of "id:base64key"; the first one
// encrypts, every one decrypts, and each ciphertext is stored with the id of
// its key, so that keys rotate by putting a new one first and keeping the
// old ones until every row has been re-encrypted.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the size of an AES-256 key.
const KeySize = 32

// Keyring holds the encryption keys.
type Keyring struct {
	current string
	aeads   map[string]cipher.AEAD
}

// ErrUndecryptable is wrapped by every failure to open a secret. The
// messages name the key id, never the secret, so that they can go to logs,
// the delivery log and API answers.
var ErrUndecryptable = errors.New("secret cannot be decrypted")

// ErrUnknownKey means a ciphertext names a key the ring does not hold (it
// is wrapped with ErrUndecryptable).
var ErrUnknownKey = errors.New("unknown")

// Parse reads "id:base64key[,id:base64key...]"; the first key is current.
func Parse(spec string) (*Keyring, error) {
	k := &Keyring{aeads: map[string]cipher.AEAD{}}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, b64, ok := strings.Cut(part, ":")
		if !ok || id == "" || strings.ContainsAny(id, " :") {
			return nil, errors.New(`secrets key must be "id:base64key"`)
		}
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(key) != KeySize {
			return nil, fmt.Errorf("secrets key %q must be %d bytes in standard base64", id, KeySize)
		}
		if _, dup := k.aeads[id]; dup {
			return nil, fmt.Errorf("secrets key id %q appears twice", id)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("secrets key %q: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("secrets key %q: %w", id, err)
		}
		k.aeads[id] = aead
		if k.current == "" {
			k.current = id
		}
	}
	if k.current == "" {
		return nil, errors.New("no secrets key given")
	}
	return k, nil
}

// NewKeySpec returns a fresh "id:base64key" (notifyd's development key).
func NewKeySpec(id string) string {
	key := make([]byte, KeySize)
	_, _ = rand.Read(key)
	return id + ":" + base64.StdEncoding.EncodeToString(key)
}

// Has reports whether the ring holds a key with this id.
func (k *Keyring) Has(keyID string) bool { _, ok := k.aeads[keyID]; return ok }

// Current is the id of the key that encrypts.
func (k *Keyring) Current() string { return k.current }

// Seal encrypts plaintext with the current key. aad binds the ciphertext to
// its row (the webhook id), so that a ciphertext copied to another row does
// not decrypt.
func (k *Keyring) Seal(plaintext, aad []byte) (keyID string, ciphertext []byte) {
	aead := k.aeads[k.current]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	_, _ = rand.Read(nonce)
	return k.current, aead.Seal(nonce, nonce, plaintext, aad)
}

// Open decrypts a ciphertext sealed under keyID.
func (k *Keyring) Open(keyID string, ciphertext, aad []byte) ([]byte, error) {
	aead, ok := k.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("%w: key %q %w", ErrUndecryptable, keyID, ErrUnknownKey)
	}
	if len(ciphertext) < aead.NonceSize() {
		return nil, fmt.Errorf("%w: the ciphertext under key %q is too short", ErrUndecryptable, keyID)
	}
	nonce, sealed := ciphertext[:aead.NonceSize()], ciphertext[aead.NonceSize():]
	out, err := aead.Open(nil, nonce, sealed, aad)
	if err != nil {
		// The key id is known but its key does not open the ciphertext: the
		// key behind the id was changed, or the row was altered.
		return nil, fmt.Errorf("%w: key %q does not open it (was the key behind that id changed?)", ErrUndecryptable, keyID)
	}
	return out, nil
}
