package config

import (
	"strings"
	"testing"
)

func TestTracingIsOffUntilAnOTLPEndpointIsSet(t *testing.T) {
	for _, tc := range []struct {
		name     string
		env      map[string]string
		endpoint string
		sampler  string
		ratio    float64
	}{
		{"nothing set", nil, "", "parentbased_always_on", 1},
		{"base endpoint gets the traces path", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}, "http://collector:4318/v1/traces", "parentbased_always_on", 1},
		{"traces endpoint is taken as is", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b/otlp"}, "https://b/otlp", "parentbased_always_on", 1},
		{"exporter otlp alone means the default endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, "http://localhost:4318/v1/traces", "parentbased_always_on", 1},
		{"exporter none turns it off", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318"}, "", "parentbased_always_on", 1},
		{"the SDK disabled turns it off", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318"}, "", "parentbased_always_on", 1},
		{"a ratio sampler", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}, "http://a:4318/v1/traces", "parentbased_traceidratio", 0.25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := FromMap(tc.env)
			got := ReadTracing(e)
			if err := e.Err(); err != nil {
				t.Fatal(err)
			}
			if got.Endpoint != tc.endpoint || got.Enabled() != (tc.endpoint != "") || got.Sampler != tc.sampler || got.SamplerArg != tc.ratio {
				t.Fatalf("got %+v", got)
			}
		})
	}
}

func TestBadTracingSettingsAreNamed(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, `OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" is not supported; set http/protobuf`},
		{map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, `OTEL_TRACES_EXPORTER: "zipkin" is not supported; set otlp or none`},
		{map[string]string{"OTEL_TRACES_SAMPLER": "sometimes"}, `OTEL_TRACES_SAMPLER: "sometimes" is not one of always_on`},
		{map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, `OTEL_TRACES_SAMPLER_ARG: "2" is not a ratio between 0 and 1`},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, `OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318/v1/traces" is not an http:// or https:// URL`},
		{map[string]string{"OTEL_SDK_DISABLED": "maybe"}, `OTEL_SDK_DISABLED: "maybe" is not true or false`},
	} {
		e := FromMap(tc.env)
		got := ReadTracing(e)
		if err := e.Err(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.env, err, tc.want)
		}
		if got.Enabled() {
			t.Errorf("%v: tracing on after an error", tc.env)
		}
	}
}
