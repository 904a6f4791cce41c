package notifyd_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/xpeditis/notify/pkg/publisher"
	"github.com/xpeditis/notify/pkg/testkit"
)

const (
	rulesFile     = "../../prometheus/notify.rules.yml"
	dashboardFile = "../../grafana/notify-dashboard.json"
)

// synthetic are the series Prometheus makes itself for each target; no
// /metrics output has them.
var synthetic = map[string]bool{"up": true}

// grafanaMacros stand in for the dashboard's Grafana variables so that its
// queries parse as PromQL.
var grafanaMacros = strings.NewReplacer("$__rate_interval", "5m", "${__rate_interval}", "5m", "$__interval", "1m")

// metricNames returns the metric names an expression selects.
func metricNames(expr string) ([]string, error) {
	e, err := parser.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			err = fmt.Errorf("%q selects series by something else than one metric name", vs.String())
		}
		names = append(names, name)
		return nil
	})
	return names, err
}

// ruleQueries reads the rules file as Prometheus does (rulefmt validates it)
// and returns each expression by rule, and the names the recording rules
// make.
func ruleQueries(t *testing.T) (queries map[string]string, recorded map[string]bool) {
	t.Helper()
	groups, errs := rulefmt.ParseFile(rulesFile, false)
	if len(errs) > 0 {
		t.Fatalf("%s: %v", rulesFile, errs)
	}
	queries, recorded = map[string]string{}, map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			name := r.Alert
			if r.Record != "" {
				name = r.Record
				recorded[r.Record] = true
			}
			queries[g.Name+"/"+name] = r.Expr
		}
	}
	return queries, recorded
}

// dashboardQueries returns every "expr" of the dashboard JSON, wherever it
// is (panels, rows' panels, templating), by where it is.
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	out := map[string]string{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					out[path] = grafanaMacros.Replace(s)
					continue
				}
				p := path + "." + k
				if title, ok := v["title"].(string); ok {
					p = path + "[" + title + "]." + k
				}
				walk(p, x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), x)
			}
		}
	}
	walk("", doc)
	if len(out) == 0 {
		t.Fatalf("%s has no queries", dashboardFile)
	}
	return out
}

// exposed scrapes /metrics and returns every series name it can hold
// (a histogram's _bucket, _sum and _count).
func exposed(base string) (map[string]bool, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	names := map[string]bool{}
	for name, f := range families {
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[name], names[name+"_sum"], names[name+"_count"] = true, true, true
		default:
			names[name] = true
		}
	}
	return names, nil
}

// Every metric the alert rules and the Grafana dashboard query is one that
// notifyd's real /metrics output has once an event went through the three
// services (and a poison event was set aside, and a client left): a renamed
// metric fails here instead of leaving an alert that can never fire.
func TestRulesAndDashboardNameOnlyMetricsTheServicesExpose(t *testing.T) {
	rules, recorded := ruleQueries(t)
	queries := dashboardQueries(t)
	for where, q := range rules {
		queries[filepath.Base(rulesFile)+":"+where] = q
	}
	need := map[string][]string{} // metric → where it is queried
	for where, q := range queries {
		names, err := metricNames(q)
		if err != nil {
			t.Errorf("%s: %v\n%s", where, err, q)
		}
		for _, n := range names {
			need[n] = append(need[n], where)
		}
	}
	for name, where := range need {
		if strings.Contains(name, ":") && !recorded[name] {
			t.Errorf("%s is queried (%s) but no recording rule makes it", name, strings.Join(where, ", "))
		}
	}

	base, natsURL, _ := runNotifydListening(t, map[string]string{"WEBHOOK_ALLOW_PRIVATE_TARGETS": "true", "DATA_DIR": t.TempDir()})
	p := startPipeline(t, base, natsURL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := publisher.New(p.js).Publish(ctx, p.event()); err != nil {
		t.Fatal(err)
	}
	p.awaitDelivery()
	// A poison event (dead letters) and a client that leaves (disconnects).
	if _, err := p.js.Publish(ctx, "events.BOOKING_CREATED", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	p.ws.Close()

	testkit.WaitFor(t, 20*time.Second, "every queried metric in /metrics", func() error {
		have, err := exposed(base)
		if err != nil {
			return err
		}
		var missing []string
		for name, where := range need {
			if !have[name] && !recorded[name] && !synthetic[name] {
				sort.Strings(where)
				missing = append(missing, fmt.Sprintf("%s (queried by %s)", name, strings.Join(where, ", ")))
			}
		}
		if len(missing) > 0 {
			sort.Strings(missing)
			return fmt.Errorf("not in notifyd's /metrics:\n%s", strings.Join(missing, "\n"))
		}
		return nil
	})
}
