package api

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xpeditis/notify/services/notification-api/internal/store"
)

func rawCursor(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

const cursorID = "019abcde-0123-7456-89ab-0123456789ab"

func TestCursorRoundTrips(t *testing.T) {
	for _, at := range []time.Time{
		minCursorTime, time.Date(2026, 11, 29, 15, 4, 5, 123456000, time.UTC), maxCursorTime.Add(-time.Microsecond),
	} {
		c := store.Cursor{CreatedAt: at, ID: uuid.MustParse(cursorID)}
		got, err := decodeCursor(encodeCursor(c))
		if err != nil || !got.CreatedAt.Equal(at) || got.ID != c.ID {
			t.Errorf("%v: decoded %+v, %v", at, got, err)
		}
	}
}

// Cursors the API never hands out are refused rather than passed to the
// query: a negative or absurd time used to reach PostgreSQL and fail there
// (a 500 and an ERROR in the log).
func TestCursorsTheAPINeverReturnsAreRefused(t *testing.T) {
	ok := encodeCursor(store.Cursor{CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), ID: uuid.MustParse(cursorID)})
	for name, s := range map[string]string{
		"negative time":            rawCursor("-1." + cursorID),
		"most negative time":       rawCursor("-1y2p0ij32e8e8." + cursorID),
		"largest time":             rawCursor("1y2p0ij32e8e7." + cursorID),
		"before 2000":              rawCursor("0." + cursorID),
		"after 2200":               rawCursor("2ujdq00npc0." + cursorID),
		"in 1999":                  rawCursor("9bjhauww00." + cursorID),
		"time out of int64":        rawCursor("zzzzzzzzzzzzzz." + cursorID),
		"plus sign":                rawCursor("+" + string(mustDecode(ok))),
		"leading zero":             rawCursor("0" + string(mustDecode(ok))),
		"upper-case id":            rawCursor(string(mustDecode(ok)[:len(mustDecode(ok))-36]) + "019ABCDE-0123-7456-89AB-0123456789AB"),
		"braced id":                rawCursor(string(mustDecode(ok)[:len(mustDecode(ok))-36]) + "{" + cursorID + "}"),
		"no separator":             rawCursor("nope"),
		"no id":                    rawCursor("lx5q2c0."),
		"padded base64":            ok + "==",
		"standard base64 alphabet": base64.StdEncoding.EncodeToString(mustDecode(ok)),
		"too long":                 ok + ok,
		"empty parts":              rawCursor("."),
	} {
		if c, err := decodeCursor(s); err == nil {
			t.Errorf("%s: %q decoded to %+v, want refused", name, s, c)
		}
	}
}

func mustDecode(s string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzDecodeCursor: whatever a client sends, decoding does not panic, and
// what it accepts is exactly a cursor the API could have returned (inside the
// time bounds, spelled as encodeCursor spells it).
func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(store.Cursor{CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), ID: uuid.MustParse(cursorID)}))
	f.Add(rawCursor("-1." + cursorID))
	f.Add("bm9wZQ")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := decodeCursor(s)
		if err != nil {
			return
		}
		if c.CreatedAt.Before(minCursorTime) || !c.CreatedAt.Before(maxCursorTime) {
			t.Fatalf("%q decoded to a time outside the bounds: %v", s, c.CreatedAt)
		}
		if again := encodeCursor(c); again != s {
			t.Fatalf("%q decoded to %+v, which encodes as %q", s, c, again)
		}
	})
}
