package store

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/google/uuid"
)

// Random strings, bytes of every value, against encoding/json.
func TestAppendJSONStringIsEncodingJSONs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", "\"", "\\", "<", ">", "&", "\u2028", "\u2029", "é", "🚢", "\x00", "\x1f", "\x7f", "\xff", "\xe2\x80", "\xed\xbf\xbf"}
	for i := range 20000 {
		var s []byte
		for range rng.IntN(12) {
			if rng.IntN(3) == 0 {
				s = append(s, byte(rng.IntN(256)))
			} else {
				s = append(s, alphabet[rng.IntN(len(alphabet))]...)
			}
		}
		want, err := json.Marshal(string(s))
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		AppendJSONString(&got, string(s))
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("case %d %q: got %s, want %s", i, s, got.Bytes(), want)
		}
	}
}

func TestEncodeUUIDIsItsString(t *testing.T) {
	for range 100 {
		u := uuid.New()
		var b [36]byte
		encodeUUID(b[:], u)
		if string(b[:]) != u.String() {
			t.Fatalf("%s encoded as %s", u, b)
		}
	}
}
