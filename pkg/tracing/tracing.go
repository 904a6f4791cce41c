// Package tracing is the services' OpenTelemetry tracing: one place that
// builds tracers from config.Tracing and carries W3C trace context
// (traceparent, tracestate) in NATS headers, HTTP headers and stored
// strings.
//
// A process gets one Tracing; each service it runs takes its tracer from
// it by name, so that notifyd's three services show up as three services.
// With tracing off the tracers are no-ops: nothing is recorded or
// exported, and a trace context that arrives is still passed on
// unchanged, so that a service with tracing off does not cut the traces of
// the others.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/xpeditis/notify/pkg/config"
)

// Namespace is the service.namespace of every span the services export.
const Namespace = "xpeditis-notify"

// Tracing makes the tracers of one process.
type Tracing struct {
	cfg config.Tracing
	log *slog.Logger

	mu        sync.Mutex
	providers map[string]*sdktrace.TracerProvider
}

// New returns the tracing of a process; it exports nothing until a tracer
// is asked for, and nothing at all when cfg is off.
func New(cfg config.Tracing, log *slog.Logger) *Tracing {
	if cfg.Enabled() {
		// The SDK reports failed exports through its one, process-wide
		// handler (by default the standard logger): send them to ours.
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", "err", err) }))
		log.Info("tracing on", "endpoint", cfg.Endpoint, "sampler", cfg.Sampler)
	}
	return &Tracing{cfg: cfg, log: log, providers: make(map[string]*sdktrace.TracerProvider)}
}

// Tracer returns the tracer of the named service (its service.name unless
// OTEL_SERVICE_NAME overrides it). A nil Tracing, tracing off or a
// provider that cannot be built (the reason is logged) give a no-op tracer.
func (t *Tracing) Tracer(service string) trace.Tracer {
	tp, err := t.provider(service)
	if err != nil {
		t.log.Warn("tracing off for this service", "service", service, "err", err)
	}
	if tp == nil {
		return noop.NewTracerProvider().Tracer(service)
	}
	return tp.Tracer("github.com/xpeditis/notify/" + service)
}

func (t *Tracing) provider(service string) (*sdktrace.TracerProvider, error) {
	if t == nil || !t.cfg.Enabled() {
		return nil, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if tp, ok := t.providers[service]; ok {
		return tp, nil
	}
	// The exporter only dials when it sends; an error here is a bad option.
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(t.cfg.Endpoint))
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	name := service
	if t.cfg.ServiceName != "" {
		name = t.cfg.ServiceName
	}
	// Default reads OTEL_RESOURCE_ATTRIBUTES (and the host's SDK facts);
	// the service's name and namespace take precedence.
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName(name), semconv.ServiceNamespace(Namespace)))
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	// The batch processor's queue is bounded (2048 spans); when the
	// collector is slow or gone, spans are dropped, never the service.
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sampler(t.cfg)),
	)
	t.providers[service] = tp
	return tp, nil
}

// sampler is the sampler named by OTEL_TRACES_SAMPLER (config checked the
// name).
func sampler(c config.Tracing) sdktrace.Sampler {
	switch c.Sampler {
	case "always_on":
		return sdktrace.AlwaysSample()
	case "always_off":
		return sdktrace.NeverSample()
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(c.SamplerArg)
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.SamplerArg))
	default:
		return sdktrace.ParentBased(sdktrace.AlwaysSample())
	}
}

// Shutdown exports the spans still queued and stops every provider.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for _, tp := range t.providers {
		errs = append(errs, tp.Shutdown(ctx))
	}
	clear(t.providers)
	return errors.Join(errs...)
}

// propagator is W3C Trace Context: the traceparent and tracestate headers.
var propagator = propagation.TraceContext{}

// natsHeader carries trace context in NATS headers under the exact,
// lower-case W3C names: NATS header names are case-sensitive, and
// producers in other languages look for "traceparent".
type natsHeader nats.Header

func (h natsHeader) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}
func (h natsHeader) Set(key, value string) { h[key] = []string{value} }
func (h natsHeader) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// Inject writes the trace context of ctx into a NATS message's headers;
// nothing when ctx holds none.
func Inject(ctx context.Context, h nats.Header) { propagator.Inject(ctx, natsHeader(h)) }

// Extract returns ctx holding the trace context of a NATS message's
// headers, as the remote parent of the spans started from it.
func Extract(ctx context.Context, h nats.Header) context.Context {
	if h == nil {
		return ctx
	}
	return propagator.Extract(ctx, natsHeader(h))
}

// InjectHTTP writes the trace context of ctx into an HTTP request's headers.
func InjectHTTP(ctx context.Context, h http.Header) {
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

// TraceParent is the traceparent of ctx's span, to store with work done
// later ("" when ctx holds none); FromTraceParent restores it.
func TraceParent(ctx context.Context) string {
	c := propagation.MapCarrier{}
	propagator.Inject(ctx, c)
	return c["traceparent"]
}

// FromTraceParent returns ctx holding the trace context of a stored
// traceparent; ctx itself when it is empty or malformed.
func FromTraceParent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// Messaging attributes of spans about NATS messages.
func Messaging(subject string) []attribute.KeyValue {
	return []attribute.KeyValue{semconv.MessagingSystemKey.String("nats"), semconv.MessagingDestinationName(subject)}
}

// LinksOf returns one link per valid span context among ctxs (a batch's
// span links to the context of each message it handles).
func LinksOf(ctxs []context.Context) []trace.Link {
	links := make([]trace.Link, 0, len(ctxs))
	for _, c := range ctxs {
		if sc := trace.SpanContextFromContext(c); sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	return links
}
