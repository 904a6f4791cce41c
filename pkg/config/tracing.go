package config

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Tracing is the OpenTelemetry trace export, read from the standard OTEL_*
// variables. It is off unless an OTLP endpoint is set (or
// OTEL_TRACES_EXPORTER=otlp asks for the default one): no exporter runs and
// no span is recorded, though a traceparent that arrives is passed on.
//
// Only OTLP over HTTP with protobuf is exported: it is what every collector
// accepts on its port 4318, and the gRPC exporter would add a gRPC stack to
// every binary for no gain. The exporter itself reads the variables not
// listed here (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION,
// _CERTIFICATE), and the resource reads OTEL_RESOURCE_ATTRIBUTES.
type Tracing struct {
	// Endpoint is the full URL spans are POSTed to: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
	// as given, else OTEL_EXPORTER_OTLP_ENDPOINT plus /v1/traces. Empty: off.
	Endpoint    string
	ServiceName string  // OTEL_SERVICE_NAME; empty: each service's own name
	Sampler     string  // OTEL_TRACES_SAMPLER
	SamplerArg  float64 // OTEL_TRACES_SAMPLER_ARG: the ratio of the traceidratio samplers
}

// Enabled reports whether spans are recorded and exported.
func (t Tracing) Enabled() bool { return t.Endpoint != "" }

// Samplers are the values OTEL_TRACES_SAMPLER accepts (the specification's
// built-in samplers).
var Samplers = []string{"always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"}

// defaultOTLPEndpoint is the specification's default for OTLP/HTTP.
const defaultOTLPEndpoint = "http://localhost:4318"

// ReadTracing reads the OTEL_* variables.
func ReadTracing(e *Env) Tracing {
	t := Tracing{
		ServiceName: e.String("OTEL_SERVICE_NAME", ""),
		Sampler:     strings.ToLower(e.String("OTEL_TRACES_SAMPLER", "parentbased_always_on")),
		SamplerArg:  1,
	}
	if !slices.Contains(Samplers, t.Sampler) {
		e.Check(fmt.Errorf("OTEL_TRACES_SAMPLER: %q is not one of %s", t.Sampler, strings.Join(Samplers, ", ")))
	}
	if arg, ok := e.raw("OTEL_TRACES_SAMPLER_ARG"); ok && strings.HasSuffix(t.Sampler, "traceidratio") {
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			e.Check(fmt.Errorf("OTEL_TRACES_SAMPLER_ARG: %q is not a ratio between 0 and 1", arg))
		} else {
			t.SamplerArg = r
		}
	}
	protocol := e.String("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", e.String("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"))
	if protocol != "http/protobuf" {
		e.Check(fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL: %q is not supported; set http/protobuf and the collector's OTLP/HTTP endpoint (port 4318)", protocol))
	}
	exporter := strings.ToLower(e.String("OTEL_TRACES_EXPORTER", ""))
	switch exporter {
	case "", "otlp", "none":
	default:
		e.Check(fmt.Errorf("OTEL_TRACES_EXPORTER: %q is not supported; set otlp or none", exporter))
	}
	if e.Bool("OTEL_SDK_DISABLED", false) || exporter == "none" {
		return t
	}
	name := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	endpoint, ok := e.raw(name)
	if !ok {
		name = "OTEL_EXPORTER_OTLP_ENDPOINT"
		base, ok := e.raw(name)
		switch {
		case ok:
		case exporter == "otlp":
			base = defaultOTLPEndpoint
		default:
			return t // off: nowhere to send spans
		}
		endpoint = strings.TrimSuffix(base, "/") + "/v1/traces"
	}
	if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		e.Check(fmt.Errorf("%s: %q is not an http:// or https:// URL", name, endpoint))
		return t
	}
	t.Endpoint = endpoint
	return t
}
