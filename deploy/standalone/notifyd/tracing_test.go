package notifyd_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/xpeditis/notify/pkg/publisher"
	"github.com/xpeditis/notify/pkg/testkit"
)

// otlpSpan is one span an OTLP receiver got, with its service's name.
type otlpSpan struct {
	service string
	span    *tracepb.Span
}

func (s otlpSpan) String() string {
	return fmt.Sprintf("%s %q trace=%x span=%x parent=%x links=%d", s.service, s.span.GetName(),
		s.span.GetTraceId(), s.span.GetSpanId(), s.span.GetParentSpanId(), len(s.span.GetLinks()))
}

// otlpReceiver is an OTLP/HTTP trace receiver: what a collector's port
// 4318 does with POST /v1/traces, decoding with the OTLP protobuf types.
type otlpReceiver struct {
	URL   string
	mu    sync.Mutex
	spans []otlpSpan
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("OTLP receiver: unexpected %s %s (%s)", req.Method, req.URL.Path, req.Header.Get("Content-Type"))
			http.Error(w, "not an OTLP/HTTP protobuf export", http.StatusBadRequest)
			return
		}
		body, err := io.ReadAll(io.LimitReader(req.Body, 16<<20))
		var export coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &export)
		}
		if err != nil {
			t.Errorf("OTLP receiver: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range export.GetResourceSpans() {
			service := ""
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.GetKey() == string(semconv.ServiceNameKey) {
					service = kv.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					r.spans = append(r.spans, otlpSpan{service: service, span: s})
				}
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// find returns the span of service named name in trace traceID.
func (r *otlpReceiver) find(traceID []byte, service, name string) (*tracepb.Span, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var seen []string
	for _, s := range r.spans {
		if bytes.Equal(s.span.GetTraceId(), traceID) && s.service == service && s.span.GetName() == name {
			return s.span, nil
		}
		seen = append(seen, s.String())
	}
	return nil, fmt.Errorf("no span %q of %s in trace %x; received:\n%s", name, service, traceID, strings.Join(seen, "\n"))
}

// linking returns the span of service named name that links to the span
// (traceID, spanID): a batch span, which has its own trace.
func (r *otlpReceiver) linking(traceID, spanID []byte, service, name string) (*tracepb.Span, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.spans {
		if s.service != service || s.span.GetName() != name {
			continue
		}
		for _, l := range s.span.GetLinks() {
			if bytes.Equal(l.GetTraceId(), traceID) && bytes.Equal(l.GetSpanId(), spanID) {
				return s.span, nil
			}
		}
	}
	return nil, fmt.Errorf("no span %q of %s links to %x/%x", name, service, traceID, spanID)
}

// children returns the names of the spans whose parent is span.
func (r *otlpReceiver) children(span *tracepb.Span) map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]bool{}
	for _, s := range r.spans {
		if bytes.Equal(s.span.GetTraceId(), span.GetTraceId()) && bytes.Equal(s.span.GetParentSpanId(), span.GetSpanId()) {
			out[s.span.GetName()] = true
		}
	}
	return out
}

// One event, published by a traced producer through notifyd's NATS
// listener, leaves one trace across the three services, joined through the
// real NATS headers: notification-api's span of the event is the
// producer's child, the gateway's push is the child of that span (its
// context rode in the NOTIFY message), the webhook attempt is the
// producer's child and its request carries the attempt's traceparent; the
// batch spans link to the event, with the insert and the publish under them.
func TestOneEventIsTracedAcrossTheThreeServices(t *testing.T) {
	recv := startOTLPReceiver(t)
	// The services' batch span processors export every 50 ms instead of 5 s
	// (a variable the SDK reads itself).
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")

	base, natsURL, logs := runNotifydListening(t, map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":   recv.URL,
		"WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
		"DATA_DIR":                      t.TempDir(),
	})
	if !strings.Contains(logs.String(), `"msg":"tracing on"`) {
		t.Fatalf("notifyd does not say tracing is on:\n%s", logs)
	}
	p := startPipeline(t, base, natsURL)

	// The producer: its own OpenTelemetry SDK, exporting to the same receiver.
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(recv.URL+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName("booking-service"))))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx, root := tp.Tracer("booking-service").Start(ctx, "create booking")
	if _, err := publisher.New(p.js, publisher.WithTracer(tp.Tracer("booking-service"))).Publish(ctx, p.event()); err != nil {
		t.Fatal(err)
	}
	root.End()
	traceID := root.SpanContext().TraceID()
	tid := traceID[:]

	got := p.awaitDelivery()

	// The producer's span, the parent of both services' spans of the event.
	var produce, ingest, push, attempt *tracepb.Span
	testkit.WaitFor(t, 20*time.Second, "every span of the event", func() (err error) {
		if produce, err = recv.find(tid, "booking-service", "publish events.BOOKING_CREATED"); err != nil {
			return err
		}
		if ingest, err = recv.find(tid, "notification-api", "ingest events.BOOKING_CREATED"); err != nil {
			return err
		}
		if push, err = recv.find(tid, "realtime-gateway", "deliver live.user.*"); err != nil {
			return err
		}
		if attempt, err = recv.find(tid, "webhook-dispatcher", "POST webhook"); err != nil {
			return err
		}
		return nil
	})
	parentOf := func(child, parent *tracepb.Span) {
		t.Helper()
		if !bytes.Equal(child.GetParentSpanId(), parent.GetSpanId()) {
			t.Errorf("span %q has parent %x, want %q (%x)", child.GetName(), child.GetParentSpanId(), parent.GetName(), parent.GetSpanId())
		}
	}
	rootID := root.SpanContext().SpanID()
	if !bytes.Equal(produce.GetParentSpanId(), rootID[:]) {
		t.Errorf("the publish span is not the child of the producer's own span")
	}
	parentOf(ingest, produce)
	parentOf(push, ingest)
	parentOf(attempt, produce)
	if ingest.GetKind() != tracepb.Span_SPAN_KIND_CONSUMER || push.GetKind() != tracepb.Span_SPAN_KIND_CONSUMER ||
		attempt.GetKind() != tracepb.Span_SPAN_KIND_CLIENT || produce.GetKind() != tracepb.Span_SPAN_KIND_PRODUCER {
		t.Errorf("span kinds: publish %v, ingest %v, push %v, attempt %v", produce.GetKind(), ingest.GetKind(), push.GetKind(), attempt.GetKind())
	}
	// The outgoing request carries the attempt's context.
	want := "00-" + hex.EncodeToString(tid) + "-" + hex.EncodeToString(attempt.GetSpanId()) + "-01"
	if tp := got.Get("Traceparent"); tp != want {
		t.Errorf("webhook request traceparent %q, want %q", tp, want)
	}

	// The batches: their own traces, linked to the event's publish span.
	testkit.WaitFor(t, 20*time.Second, "the batch spans", func() error {
		batch, err := recv.linking(tid, produce.GetSpanId(), "notification-api", "ingest batch")
		if err != nil {
			return err
		}
		if kids := recv.children(batch); !kids["insert notifications"] || !kids["publish notify.user.*"] {
			return fmt.Errorf("the ingest batch span's children are %v", kids)
		}
		if bytes.Equal(batch.GetTraceId(), tid) || len(batch.GetParentSpanId()) != 0 {
			return fmt.Errorf("the ingest batch span is not a root of its own trace")
		}
		_, err = recv.linking(tid, produce.GetSpanId(), "webhook-dispatcher", "store deliveries")
		return err
	})
	// The event's span links back to its batch.
	if len(ingest.GetLinks()) != 1 {
		t.Errorf("the ingest span of the event has %d links, want 1 (its batch)", len(ingest.GetLinks()))
	}
}
