package check

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const (
	chartDir = repoRoot + "/deploy/helm/notify"
	// kubeVersion is the Kubernetes version the chart is rendered for: the
	// oldest its Chart.yaml accepts is 1.30 (helm's own default is older).
	kubeVersion = "1.30.0"
	release     = "prod"
)

// The values files of the two renders CI checks: values.yaml with the
// throwaway secrets it lacks on top, and the production file (which names
// existing Secrets).
var (
	defaultValues    = []string{"ci/required-values.yaml"}
	productionValues = []string{"values-production.yaml"}
)

// kinds are the objects the chart may render, each with its Go API type;
// an object of any other kind fails the test, so none goes unchecked.
var kinds = map[string]func() any{
	"v1/Secret":                              func() any { return &corev1.Secret{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy":     func() any { return &networkingv1.NetworkPolicy{} },
	"networking.k8s.io/v1/Ingress":           func() any { return &networkingv1.Ingress{} },
	"gateway.networking.k8s.io/v1/HTTPRoute": func() any { return &gatewayv1.HTTPRoute{} },
	// The NATS chart's, once `helm dependency build` has put it in charts/.
	"apps/v1/StatefulSet": func() any { return &appsv1.StatefulSet{} },
	"v1/ConfigMap":        func() any { return &corev1.ConfigMap{} },
	"v1/ServiceAccount":   func() any { return &corev1.ServiceAccount{} },
	"v1/Pod":              func() any { return &corev1.Pod{} },
}

// helmBinary is $HELM, else the helm that scripts/test-setup-helm.sh put
// into .tools (test.sh runs it before the tests).
func helmBinary(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	found, _ := filepath.Glob(filepath.Join(repoRoot, ".tools", "helm-v*"))
	if len(found) == 0 {
		t.Fatal("no helm: run scripts/test-setup-helm.sh (it installs the pinned version into .tools/), or set HELM")
	}
	slices.Sort(found)
	return found[len(found)-1]
}

// chart returns the chart to render. The NATS chart it depends on is fetched
// by `helm dependency build` from the NATS repository; where that cannot be
// reached (CI here), the chart is rendered from a copy whose Chart.yaml
// declares no dependency, so helm does not refuse to start: every object of
// ours renders as with NATS (nats.enabled keeps its value), without the NATS
// chart's own objects.
func chart(t *testing.T) string {
	t.Helper()
	if tgz, _ := filepath.Glob(filepath.Join(chartDir, "charts", "nats-*.tgz")); len(tgz) > 0 {
		return chartDir
	}
	dst := filepath.Join(t.TempDir(), "notify")
	err := filepath.WalkDir(chartDir, func(path string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(chartDir, path)
		return copyFile(path, filepath.Join(dst, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
	meta, err := os.ReadFile(filepath.Join(dst, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.UnmarshalStrict(meta, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["dependencies"]; !ok {
		t.Fatal("Chart.yaml declares no dependency (the NATS chart)")
	}
	delete(m, "dependencies")
	if meta, err = yaml.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "Chart.yaml"), meta, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// helm runs helm with the values files (relative to the chart) and --set
// assignments; it returns the output and whether helm succeeded.
func helm(t *testing.T, dir, cmd string, files []string, sets ...string) (string, error) {
	t.Helper()
	args := []string{cmd}
	if cmd == "template" {
		args = append(args, release)
	}
	args = append(args, dir, "--kube-version", kubeVersion)
	if cmd == "lint" {
		args = append(args, "--strict")
	} else {
		args = append(args, "--namespace", "notify")
	}
	for _, f := range files {
		args = append(args, "-f", filepath.Join(dir, f))
	}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	var out bytes.Buffer
	c := exec.Command(helmBinary(t), args...)
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	return out.String(), err
}

// rendered is what one helm template made, decoded into the API types.
type rendered struct {
	text    string
	objects map[string]any // "Kind/name" → *T
}

func render(t *testing.T, dir string, files []string, sets ...string) rendered {
	t.Helper()
	out, err := helm(t, dir, "template", files, sets...)
	if err != nil {
		t.Fatalf("helm template %v %v: %v\n%s", files, sets, err, out)
	}
	objects, err := decodeStrict(out)
	if err != nil {
		t.Fatalf("helm template %v %v: %v", files, sets, err)
	}
	return rendered{text: out, objects: objects}
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// decodeStrict decodes every document of a rendered chart into its
// Kubernetes API type, refusing unknown and duplicated fields.
func decodeStrict(manifests string) (map[string]any, error) {
	objects := map[string]any{}
	for _, doc := range docSeparator.Split(manifests, -1) {
		var tm struct {
			metav1.TypeMeta `json:",inline"`
			Metadata        struct{ Name string } `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return nil, fmt.Errorf("%w in\n%s", err, doc)
		}
		if tm.Kind == "" {
			if strings.TrimSpace(stripComments(doc)) != "" {
				return nil, fmt.Errorf("a document without kind:\n%s", doc)
			}
			continue
		}
		newObject, ok := kinds[tm.APIVersion+"/"+tm.Kind]
		if !ok {
			return nil, fmt.Errorf("%s %s: a kind this test does not know; add its Go type to kinds", tm.APIVersion, tm.Kind)
		}
		// As the API server reads objects: duplicated keys refused, then
		// field names matched case-sensitively, unknown ones refused.
		js, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", tm.Kind, tm.Metadata.Name, err)
		}
		obj := newObject()
		strict, err := kjson.UnmarshalStrict(js, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
		if err = errors.Join(append(strict, err)...); err != nil {
			return nil, fmt.Errorf("%s %s: %w", tm.Kind, tm.Metadata.Name, err)
		}
		key := tm.Kind + "/" + tm.Metadata.Name
		if _, dup := objects[key]; dup {
			return nil, fmt.Errorf("%s rendered twice", key)
		}
		objects[key] = obj
	}
	return objects, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func object[T any](t *testing.T, r rendered, key string) *T {
	t.Helper()
	o, ok := r.objects[key]
	if !ok {
		t.Fatalf("no %s rendered", key)
	}
	v, ok := o.(*T)
	if !ok {
		t.Fatalf("%s is a %T", key, o)
	}
	return v
}

func TestChartLintsWithTheDefaultAndProductionValues(t *testing.T) {
	dir := chart(t)
	for name, files := range map[string][]string{"default": defaultValues, "production": productionValues} {
		if out, err := helm(t, dir, "lint", files); err != nil {
			t.Errorf("helm lint --strict with the %s values: %v\n%s", name, err, out)
		}
	}
}

func TestChartObjectsAllDecodeStrictlyIntoTheirAPITypes(t *testing.T) {
	cases := map[string]struct {
		files []string
		sets  []string
		check func(t *testing.T, r rendered)
	}{
		"default":    {files: defaultValues},
		"production": {files: productionValues},
		"gateway api and no ingress": {files: defaultValues, sets: []string{
			"ingress.enabled=false", "httpRoute.enabled=true", "httpRoute.sessionPersistence=true",
			"httpRoute.parentRefs[0].name=public", "httpRoute.parentRefs[0].namespace=gateway-system",
		}},
		"existing secrets and jwks and own nats with creds": {files: defaultValues, sets: []string{
			"auth.jwtSecret=null", "auth.jwksUrl=https://id.example.com/.well-known/jwks.json", "auth.issuer=https://id.example.com",
			"database.url=null", "database.existingSecret=pg-app", "database.existingSecretKey=uri",
			"webhooks.secretsKeys=null", "webhooks.existingSecret=notify-webhook-keys",
			"nats.enabled=false", "natsClient.url=nats://n1:4222\\,nats://n2:4222\\,nats://n3:4222",
			"natsClient.credsSecrets.notificationApi=napi-creds", "natsClient.credsSecrets.realtimeGateway=gw-creds",
			"natsClient.credsSecrets.webhookDispatcher=wh-creds",
		}},
		"fixed replicas and nats user and connections autoscaling": {files: defaultValues, sets: []string{
			"notificationApi.autoscaling.enabled=false", "natsClient.user=notify", "natsClient.password=s3cret-pw",
			"realtimeGateway.autoscaling.connectionsPerPod=5000", "networkPolicy.enabled=false",
		}, check: func(t *testing.T, r rendered) {
			if d := object[appsv1.Deployment](t, r, "Deployment/"+release+"-notify-notification-api"); d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
				t.Error("notification-api without autoscaling has no fixed replicas")
			}
			if _, ok := r.objects["HorizontalPodAutoscaler/"+release+"-notify-notification-api"]; ok {
				t.Error("an HPA for notification-api, whose autoscaling is off")
			}
			m := object[autoscalingv2.HorizontalPodAutoscaler](t, r, "HorizontalPodAutoscaler/"+release+"-notify-realtime-gateway").Spec.Metrics
			if len(m) != 2 || m[1].Pods == nil || m[1].Pods.Metric.Name != "gateway_connections" || m[1].Pods.Target.AverageValue.String() != "5k" {
				t.Errorf("the gateway's HPA metrics %+v: want CPU and 5000 gateway_connections per pod", m)
			}
			for key := range r.objects {
				if strings.HasPrefix(key, "NetworkPolicy/") {
					t.Errorf("%s rendered with networkPolicy.enabled=false", key)
				}
			}
		}},
	}
	dir := chart(t)
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r := render(t, dir, c.files, c.sets...)
			if len(r.objects) == 0 {
				t.Fatal("nothing rendered")
			}
			if c.check != nil {
				c.check(t, r)
			}
			// Secrets given inline are only ever in the Secret, encoded.
			for _, s := range []string{"ci-only-7f3a9c2e5b8d1f4a6c0e3b7d9a2f5c8e1b4d7a0c", "s3cret-pw", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="} {
				if strings.Contains(r.text, s) {
					t.Errorf("a secret value appears in clear in the rendered objects: %.6s…", s)
				}
			}
		})
	}
}

func TestChartDecodingFailsOnAMisspeltField(t *testing.T) {
	r := render(t, chart(t), defaultValues)
	var doc string
	for _, d := range docSeparator.Split(r.text, -1) {
		if strings.Contains(d, "kind: Deployment") {
			doc = d
			break
		}
	}
	for _, typo := range [][2]string{
		{"readinessProbe:", "readynessProbe:"},
		{"runAsNonRoot: true", "runAsNonRoot: true\n        runAsNonroot: true"},
		{"terminationGracePeriodSeconds:", "terminationGracePeriod:"},
	} {
		bad := strings.Replace(doc, typo[0], typo[1], 1)
		if bad == doc {
			t.Fatalf("%q is not in the Deployment", typo[0])
		}
		if _, err := decodeStrict(bad); err == nil {
			t.Errorf("%q decoded without error", typo[1])
		}
	}
}

// The drains of the services (README, "On a NATS cluster"): notification-api
// 20 s (pkg/app's default ShutdownGrace), the gateway GATEWAY_SHUTDOWN_GRACE
// + 5 s, the dispatcher max(20 s, WEBHOOK_TIMEOUT + 10 s).
func TestChartDeploymentsDrainWithinTheirGraceAndRunLockedDown(t *testing.T) {
	r := render(t, chart(t), defaultValues)
	const preStop = 5
	for name, drain := range map[string]int64{"notification-api": 20, "realtime-gateway": 10 + 5, "webhook-dispatcher": max(20, 10+10)} {
		t.Run(name, func(t *testing.T) {
			d := object[appsv1.Deployment](t, r, "Deployment/"+release+"-notify-"+name)
			pod := d.Spec.Template.Spec
			if got, want := *pod.TerminationGracePeriodSeconds, preStop+drain+5; got != want {
				t.Errorf("terminationGracePeriodSeconds %d, want %d (preStop %d + drain %d + 5)", got, want, preStop, drain)
			}
			if len(pod.Containers) != 1 {
				t.Fatalf("%d containers", len(pod.Containers))
			}
			c := pod.Containers[0]
			if !strings.HasSuffix(c.Image, "/"+name+":0.1.0") {
				t.Errorf("image %s", c.Image)
			}
			if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
				t.Error("liveness probe is not GET /healthz")
			}
			if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" {
				t.Error("readiness probe is not GET /readyz")
			}
			if l := c.Lifecycle; l == nil || l.PreStop == nil || l.PreStop.Sleep == nil || l.PreStop.Sleep.Seconds != preStop {
				t.Errorf("preStop is not a %d s sleep", preStop)
			}
			ps, sc := pod.SecurityContext, c.SecurityContext
			switch {
			case ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser == 0:
				t.Error("the pod may run as root")
			case sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				t.Error("privilege escalation is allowed")
			case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
				t.Error("the root file system is writable")
			case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}):
				t.Error("capabilities are not all dropped")
			}
			env := map[string]corev1.EnvVar{}
			for _, e := range c.Env {
				if _, dup := env[e.Name]; dup {
					t.Errorf("%s set twice", e.Name)
				}
				env[e.Name] = e
			}
			if env["STREAM_REPLICAS"].Value != "3" {
				t.Errorf("STREAM_REPLICAS %q, want 3", env["STREAM_REPLICAS"].Value)
			}
			if env["NATS_URL"].Value != "nats://"+release+"-nats:4222" {
				t.Errorf("NATS_URL %q, want the NATS chart's Service", env["NATS_URL"].Value)
			}
			if ref := env["JWT_SECRET"].ValueFrom; ref == nil || ref.SecretKeyRef == nil {
				t.Error("JWT_SECRET does not come from a Secret")
			}
			// The durations the drains above are computed from reach the services.
			switch name {
			case "realtime-gateway":
				if env["GATEWAY_SHUTDOWN_GRACE"].Value != "10s" || env["GATEWAY_ALLOWED_ORIGINS"].Value != "https://notify.example.com,http://notify.example.com" {
					t.Errorf("GATEWAY_SHUTDOWN_GRACE %q, GATEWAY_ALLOWED_ORIGINS %q", env["GATEWAY_SHUTDOWN_GRACE"].Value, env["GATEWAY_ALLOWED_ORIGINS"].Value)
				}
			case "webhook-dispatcher":
				if env["WEBHOOK_TIMEOUT"].Value != "10s" {
					t.Errorf("WEBHOOK_TIMEOUT %q", env["WEBHOOK_TIMEOUT"].Value)
				}
			}
			_, hasDB := env["DATABASE_URL"]
			if hasDB != (name != "realtime-gateway") {
				t.Errorf("DATABASE_URL given: %v", hasDB)
			}
			hpa := object[autoscalingv2.HorizontalPodAutoscaler](t, r, "HorizontalPodAutoscaler/"+d.Name)
			if hpa.Spec.ScaleTargetRef.Name != d.Name || len(hpa.Spec.Metrics) != 1 || hpa.Spec.Metrics[0].Resource == nil || hpa.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
				t.Errorf("the HPA does not scale %s on CPU alone", d.Name)
			}
			if d.Spec.Replicas != nil {
				t.Error("replicas set although the HPA owns them")
			}
			if pdb := object[policyv1.PodDisruptionBudget](t, r, "PodDisruptionBudget/"+d.Name); pdb.Spec.MinAvailable == nil {
				t.Error("the PDB keeps no replica available")
			}
			object[networkingv1.NetworkPolicy](t, r, "NetworkPolicy/"+d.Name)
		})
	}
	if wh := object[appsv1.Deployment](t, r, "Deployment/"+release+"-notify-webhook-dispatcher"); !slices.ContainsFunc(wh.Spec.Template.Spec.Containers[0].Env, func(e corev1.EnvVar) bool {
		return e.Name == "WEBHOOK_SECRETS_KEYS" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
	}) {
		t.Error("webhook-dispatcher gets no WEBHOOK_SECRETS_KEYS from a Secret")
	}
}

// route is one path of the one host and the Service it reaches.
type route struct{ path, kind, service string }

func TestChartIngressServesTheProductOnOneHostAndNeverTheOpsEndpoints(t *testing.T) {
	dir := chart(t)
	r := render(t, dir, defaultValues)
	svc := func(s string) string { return release + "-notify-" + s }
	want := map[string][]route{
		"rest": {
			{"/api/v1/notifications", "Prefix", svc("notification-api")},
			{"/api/v1/openapi.json", "Exact", svc("notification-api")},
			{"/api/v1/webhooks", "Prefix", svc("webhook-dispatcher")},
		},
		"realtime": {
			{"/socket.io/", "Prefix", svc("realtime-gateway")},
			{"/ws", "Exact", svc("realtime-gateway")},
		},
	}
	for part, routes := range want {
		ing := object[networkingv1.Ingress](t, r, "Ingress/"+release+"-notify-"+part)
		if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != "notify.example.com" {
			t.Fatalf("%s: want one rule for notify.example.com", part)
		}
		var got []route
		for _, p := range ing.Spec.Rules[0].HTTP.Paths {
			got = append(got, route{p.Path, string(*p.PathType), p.Backend.Service.Name})
			for _, ops := range []string{"/metrics", "/healthz", "/readyz"} {
				if strings.HasPrefix(ops, strings.TrimSuffix(p.Path, "/")) {
					t.Errorf("%s: path %s exposes %s", part, p.Path, ops)
				}
			}
		}
		if !slices.Equal(got, routes) {
			t.Errorf("%s routes %v, want %v", part, got, routes)
		}
		if len(ing.Spec.TLS) != 0 {
			t.Errorf("%s: TLS without ingress.tlsSecret", part)
		}
		affinity := ing.Annotations["nginx.ingress.kubernetes.io/affinity"]
		if (affinity == "cookie") != (part == "realtime") {
			t.Errorf("%s: cookie affinity %q", part, affinity)
		}
		if timeout := ing.Annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]; part == "realtime" && timeout != "3600" {
			t.Errorf("realtime read timeout %q, want an hour for WebSockets", timeout)
		}
	}

	tls := render(t, dir, defaultValues, "ingress.tlsSecret=notify-tls")
	for part, want := range map[string]int{"rest": 1, "realtime": 0} {
		if got := len(object[networkingv1.Ingress](t, tls, "Ingress/"+release+"-notify-"+part).Spec.TLS); got != want {
			t.Errorf("%s Ingress: %d TLS entries, want %d (the host's TLS declared once)", part, got, want)
		}
	}

	hr := render(t, dir, defaultValues, "httpRoute.enabled=true", "httpRoute.parentRefs[0].name=public", "httpRoute.sessionPersistence=true")
	route := object[gatewayv1.HTTPRoute](t, hr, "HTTPRoute/"+release+"-notify")
	var paths []string
	for _, rule := range route.Spec.Rules {
		for _, m := range rule.Matches {
			paths = append(paths, *m.Path.Value+" → "+string(rule.BackendRefs[0].Name))
		}
		if string(rule.BackendRefs[0].Name) == svc("realtime-gateway") {
			if rule.Timeouts == nil || rule.Timeouts.Request == nil || *rule.Timeouts.Request != "0s" {
				t.Error("the realtime rule has a request timeout")
			}
			if rule.SessionPersistence == nil || *rule.SessionPersistence.Type != gatewayv1.CookieBasedSessionPersistence {
				t.Error("the realtime rule has no cookie persistence")
			}
		}
	}
	wantPaths := []string{
		"/api/v1/notifications → " + svc("notification-api"), "/api/v1/openapi.json → " + svc("notification-api"),
		"/api/v1/webhooks → " + svc("webhook-dispatcher"), "/socket.io/ → " + svc("realtime-gateway"), "/ws → " + svc("realtime-gateway"),
	}
	if !slices.Equal(paths, wantPaths) {
		t.Errorf("HTTPRoute paths %v, want %v", paths, wantPaths)
	}
}

func TestChartRefusesAMissingSecretOrTooFewNATSServersNamingTheValue(t *testing.T) {
	dir := chart(t)
	cases := map[string]struct {
		files []string
		sets  []string
		want  string
	}{
		"nothing set":                {want: "auth.jwtSecret"},
		"no JWT secret nor JWKS":     {files: defaultValues, sets: []string{"auth.jwtSecret=null"}, want: "auth.jwksUrl"},
		"a short JWT secret":         {files: defaultValues, sets: []string{"auth.jwtSecret=too-short"}, want: "auth.jwtSecret has 9 bytes"},
		"no database URL":            {files: defaultValues, sets: []string{"database.url=null"}, want: "database.url"},
		"no webhook secret keys":     {files: defaultValues, sets: []string{"webhooks.secretsKeys=null"}, want: "webhooks.secretsKeys"},
		"a NATS cluster of 1":        {files: defaultValues, sets: []string{"nats.config.cluster.replicas=1"}, want: "set nats.config.cluster.replicas to at least 3"},
		"NATS not clustered":         {files: defaultValues, sets: []string{"nats.config.cluster.enabled=false"}, want: "has 1 server(s)"},
		"own NATS of 1 server":       {files: defaultValues, sets: []string{"nats.enabled=false", "natsClient.url=nats://n1:4222", "natsClient.clusterSize=1"}, want: "natsClient.clusterSize"},
		"own NATS without its URL":   {files: defaultValues, sets: []string{"nats.enabled=false"}, want: "natsClient.url"},
		"a misspelt value":           {files: defaultValues, sets: []string{"notificationApi.replica=3"}, want: "'replica' not allowed"},
		"production, streams over 5": {files: productionValues, sets: []string{"streamReplicas=5"}, want: "streamReplicas is 5 but the NATS cluster has 3 server(s)"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			out, err := helm(t, dir, "template", c.files, c.sets...)
			if err == nil {
				t.Fatalf("rendered; want a failure naming %q", c.want)
			}
			if !strings.Contains(out, c.want) {
				t.Errorf("failed with %q; want it to name %q", strings.TrimSpace(out), c.want)
			}
		})
	}
}
