package tracing_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/pkg/tracing"
)

// A W3C example context (trace-context specification, "traceparent").
const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func remote(t *testing.T) context.Context {
	t.Helper()
	ctx := tracing.FromTraceParent(context.Background(), traceparent)
	if !trace.SpanContextFromContext(ctx).IsRemote() {
		t.Fatalf("%s was not read", traceparent)
	}
	return ctx
}

func TestTraceContextRidesInNATSHeadersUnderTheW3CName(t *testing.T) {
	h := nats.Header{}
	tracing.Inject(remote(t), h)
	// NATS header names are case-sensitive: the exact W3C name, lower case.
	if got := h["traceparent"]; len(got) != 1 || got[0] != traceparent {
		t.Fatalf("headers %v", h)
	}
	back := trace.SpanContextFromContext(tracing.Extract(context.Background(), h))
	if back.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || back.SpanID().String() != "00f067aa0ba902b7" || !back.IsSampled() {
		t.Fatalf("extracted %v", back)
	}
	if ctx := tracing.Extract(context.Background(), nil); trace.SpanContextFromContext(ctx).IsValid() {
		t.Fatal("a message without headers gave a trace context")
	}
}

func TestTraceContextRidesInHTTPHeadersAndStoredStrings(t *testing.T) {
	h := http.Header{}
	tracing.InjectHTTP(remote(t), h)
	if got := h.Get("traceparent"); got != traceparent {
		t.Fatalf("traceparent header %q", got)
	}
	if got := tracing.TraceParent(remote(t)); got != traceparent {
		t.Fatalf("TraceParent %q", got)
	}
	for _, bad := range []string{"", "00-zz-00f067aa0ba902b7-01", "garbage"} {
		if ctx := tracing.FromTraceParent(context.Background(), bad); trace.SpanContextFromContext(ctx).IsValid() {
			t.Errorf("%q gave a trace context", bad)
		}
	}
	if got := tracing.TraceParent(context.Background()); got != "" {
		t.Errorf("no context gave %q", got)
	}
}

// Off, a service records nothing but passes on the context it received, so
// that the traces of the services that are on stay whole.
func TestTracingOffRecordsNothingAndPassesTheContextOn(t *testing.T) {
	tr := tracing.New(config.Tracing{}, testkit.Logger())
	ctx, span := tr.Tracer("notification-api").Start(remote(t), "ingest")
	defer span.End()
	if span.IsRecording() {
		t.Fatal("a span is recorded with tracing off")
	}
	if got := tracing.TraceParent(ctx); got != traceparent {
		t.Fatalf("passed on %q, want %q", got, traceparent)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
