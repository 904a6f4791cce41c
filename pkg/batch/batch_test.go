package batch_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/batch"
)

func TestNextTakesOnlyWhatHasArrivedWithoutAWindow(t *testing.T) {
	in := make(chan int, 10)
	for i := range 5 {
		in <- i
	}
	got, open := batch.Next(context.Background(), in, nil, 3, 0)
	if !open || !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("first batch %v (open %v), want [0 1 2] and open", got, open)
	}
	got, open = batch.Next(context.Background(), in, got[:0], 3, 0)
	if !open || !slices.Equal(got, []int{3, 4}) {
		t.Fatalf("second batch %v (open %v), want [3 4] and open", got, open)
	}
}

// Items sent one at a time after the first join its batch while the window
// lasts; a full batch returns without waiting for the window's end.
func TestNextGathersATrickleWithinTheWindow(t *testing.T) {
	in := make(chan int) // unbuffered: each item arrives on its own
	go func() {
		for i := range 4 {
			in <- i
		}
	}()
	got, open := batch.Next(context.Background(), in, nil, 4, time.Hour)
	if !open || !slices.Equal(got, []int{0, 1, 2, 3}) {
		t.Fatalf("batch %v (open %v), want [0 1 2 3] and open", got, open)
	}
}

func TestNextReturnsWhenTheWindowEnds(t *testing.T) {
	in := make(chan int, 1)
	in <- 7
	got, open := batch.Next(context.Background(), in, nil, 100, time.Millisecond)
	if !open || !slices.Equal(got, []int{7}) {
		t.Fatalf("batch %v (open %v), want [7] and open", got, open)
	}
}

func TestNextReportsAClosedChannelWithWhatWasLeft(t *testing.T) {
	in := make(chan int, 2)
	in <- 1
	close(in)
	got, open := batch.Next(context.Background(), in, nil, 10, time.Hour)
	if open || !slices.Equal(got, []int{1}) {
		t.Fatalf("batch %v (open %v), want [1] and closed", got, open)
	}
	got, open = batch.Next(context.Background(), in, nil, 10, time.Hour)
	if open || len(got) != 0 {
		t.Fatalf("after the end: batch %v (open %v), want none and closed", got, open)
	}
}

func TestNextReturnsNothingWhenCancelledBeforeTheFirstItem(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, open := batch.Next(ctx, make(chan int), nil, 10, time.Hour)
	if !open || len(got) != 0 {
		t.Fatalf("batch %v (open %v), want none and open", got, open)
	}
}
