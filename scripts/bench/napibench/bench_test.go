package napibench

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestPercentilesAreNearestRank(t *testing.T) {
	ds := make([]time.Duration, 100)
	for i := range ds {
		ds[i] = time.Duration(100-i) * time.Millisecond // unsorted on purpose
	}
	s := Summarize(ds)
	want := Summary{N: 100, P50: 50 * time.Millisecond, P90: 90 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond, Mean: 50500 * time.Microsecond}
	if s != want {
		t.Fatalf("got %+v, want %+v", s, want)
	}
	one := Summarize([]time.Duration{7})
	if one.P50 != 7 || one.P99 != 7 || one.Max != 7 {
		t.Fatalf("one sample: %+v", one)
	}
	if Summarize(nil).N != 0 || Percentile(nil, 50) != 0 {
		t.Fatal("empty input must give zeros")
	}
	if got := Percentile([]time.Duration{1, 2, 3}, 50); got != 2 {
		t.Fatalf("p50 of 1,2,3 = %d, want 2", got)
	}
}

func TestSeedIDsAreUUIDv7OfTheirTime(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	at := time.Date(2026, 11, 27, 10, 0, 0, 123_000_000, time.UTC)
	prev := uuidV7At(at.Add(-time.Millisecond), rng)
	for i := range 1000 {
		u := uuidV7At(at.Add(time.Duration(i)*time.Millisecond), rng)
		if u.Version() != 7 || u.Variant().String() != "RFC4122" {
			t.Fatalf("%s: version %d variant %s", u, u.Version(), u.Variant())
		}
		sec, nsec := u.Time().UnixTime()
		if got := time.Unix(sec, nsec).UnixMilli(); got != at.UnixMilli()+int64(i) {
			t.Fatalf("%s carries %d ms, want %d", u, got, at.UnixMilli()+int64(i))
		}
		if u.String() <= prev.String() {
			t.Fatalf("%s does not sort after %s", u, prev)
		}
		prev = u
	}
}

func TestRunIDsAreSafeInTableNames(t *testing.T) {
	for range 100 {
		id := runID()
		for _, c := range id {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
				t.Fatalf("run id %q has %q", id, c)
			}
		}
	}
}
