package gateway

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// onOwnStack returns once fn has run, however many run at once, and leaves
// at most maxIdleStacks workers waiting.
func TestOnOwnStack(t *testing.T) {
	var ran atomic.Int64
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			for range 20 {
				before := ran.Load()
				onOwnStack(func() { ran.Add(1) })
				if ran.Load() <= before {
					t.Error("onOwnStack returned before fn ran")
					return
				}
			}
		})
	}
	wg.Wait()
	if got := ran.Load(); got != 200*20 {
		t.Fatalf("ran %d times, want %d", got, 200*20)
	}
	if n := len(idleStacks); n > maxIdleStacks {
		t.Fatalf("%d workers wait, want at most %d", n, maxIdleStacks)
	}
	// A fn that grows its stack deeply runs as well on a reused worker.
	var depth func(int) int
	depth = func(n int) int {
		var pad [256]byte
		if n == 0 {
			return int(pad[0])
		}
		return depth(n-1) + int(pad[n%256])
	}
	for range 3 {
		onOwnStack(func() { depth(200) })
	}
}

// A connection's bytes count for each of tens of thousands of idle
// connections: its struct must stay in the 320-byte size class (it was 352
// before the heartbeat times became instants and its flags were packed).
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(conn{}); n > 320 {
		t.Fatalf("conn is %d bytes, more than the 320-byte size class", n)
	}
}

func TestInstant(t *testing.T) {
	if at(time.Time{}) != 0 {
		t.Fatal("the zero time is not the zero instant")
	}
	now := time.Now()
	later := now.Add(1500 * time.Millisecond)
	if got := at(later) - at(now); got != instant(1500*time.Millisecond) {
		t.Fatalf("instants 1.5s apart differ by %v", time.Duration(got))
	}
	if !at(now).time().Equal(now) {
		t.Fatalf("at(now).time() = %v, want %v", at(now).time(), now)
	}
	if at(now).add(time.Second) != at(now.Add(time.Second)) {
		t.Fatal("add disagrees with time.Add")
	}
}
