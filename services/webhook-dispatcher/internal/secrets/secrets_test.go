package secrets

import (
	"errors"
	"strings"
	"testing"
)

func TestSealOpenAndRotate(t *testing.T) {
	oldSpec := NewKeySpec("k1")
	old, err := Parse(oldSpec)
	if err != nil {
		t.Fatal(err)
	}
	kid, ct := old.Seal([]byte("whsec_abc"), []byte("hook-1"))
	if kid != "k1" {
		t.Fatalf("key id = %q", kid)
	}
	if _, err := old.Open(kid, ct, []byte("hook-2")); err == nil {
		t.Fatal("ciphertext opened under another row's aad")
	}
	rotated, err := Parse(NewKeySpec("k2") + "," + oldSpec)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.Current() != "k2" {
		t.Fatalf("current = %q, want the first key", rotated.Current())
	}
	pt, err := rotated.Open(kid, ct, []byte("hook-1"))
	if err != nil || string(pt) != "whsec_abc" {
		t.Fatalf("open after rotation = %q, %v", pt, err)
	}
	kid2, ct2 := rotated.Seal(pt, []byte("hook-1"))
	if kid2 != "k2" {
		t.Fatalf("re-encrypted with %q", kid2)
	}
	if _, err := old.Open(kid2, ct2, []byte("hook-1")); !errors.Is(err, ErrUnknownKey) || !errors.Is(err, ErrUndecryptable) ||
		err.Error() != `secret cannot be decrypted: key "k2" unknown` {
		t.Fatalf("old ring opened a new ciphertext: %v", err)
	}
	// Same key id, another key: the id is known, the key does not open it.
	changed, err := Parse(NewKeySpec("k1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := changed.Open(kid, ct, []byte("hook-1")); !errors.Is(err, ErrUndecryptable) || errors.Is(err, ErrUnknownKey) ||
		!strings.Contains(err.Error(), `key "k1" does not open it`) {
		t.Fatalf("a changed key: %v", err)
	}
}

func TestParseRefusesBadKeys(t *testing.T) {
	for _, spec := range []string{"", "nokey", "k1:not-base64!", "k1:c2hvcnQ=", NewKeySpec("a") + "," + NewKeySpec("a")} {
		if _, err := Parse(spec); err == nil {
			t.Errorf("Parse(%q) accepted", spec)
		}
	}
}
