{{/* The release's name for its objects: <release>-notify, or the release alone when it says notify. */}}
{{- define "notify.fullname" -}}
{{- if contains "notify" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-notify" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
The three services. key: their values; name: binary, image and object suffix; drain: the
seconds a graceful stop may take, as each service bounds it (pkg/app's 20 s default;
realtimegateway: GATEWAY_SHUTDOWN_GRACE + 5 s; webhookdispatcher: max(20 s, WEBHOOK_TIMEOUT
+ 10 s)); db: needs PostgreSQL; public: the routes the Ingress sends it.
*/}}
{{- define "notify.components" -}}
{{- $gw := .Values.realtimeGateway -}}
{{- $wh := .Values.webhookDispatcher -}}
notificationApi:
  name: notification-api
  drain: 20
  db: true
realtimeGateway:
  name: realtime-gateway
  drain: {{ add (int $gw.shutdownGraceSeconds) 5 }}
  db: false
webhookDispatcher:
  name: webhook-dispatcher
  drain: {{ max 20 (add (int $wh.timeoutSeconds) 10) }}
  db: true
{{- end -}}

{{- define "notify.labels" -}}
app.kubernetes.io/part-of: notify
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one service; call with (dict "root" $ "name" <service name>). */}}
{{- define "notify.selector" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* The Secret the chart makes for the values given inline. */}}
{{- define "notify.secretName" -}}
{{- include "notify.fullname" . -}}
{{- end -}}

{{/* NATS_URL: natsClient.url, else the NATS chart's client Service. */}}
{{- define "notify.natsURL" -}}
{{- if .Values.natsClient.url -}}
{{- .Values.natsClient.url -}}
{{- else -}}
{{- $name := ternary .Release.Name (printf "%s-nats" .Release.Name) (contains "nats" .Release.Name) -}}
nats://{{ $name | trunc 63 | trimSuffix "-" }}:4222
{{- end -}}
{{- end -}}

{{/* Servers of the NATS cluster the streams are replicated over. */}}
{{- define "notify.natsServers" -}}
{{- if .Values.nats.enabled -}}
{{- $c := ((.Values.nats.config | default dict).cluster | default dict) -}}
{{- ternary (int ($c.replicas | default 3)) 1 (and (hasKey $c "enabled") $c.enabled) -}}
{{- else -}}
{{- int .Values.natsClient.clusterSize -}}
{{- end -}}
{{- end -}}

{{/*
Render-time checks: what the services would refuse at start, refused at install with the
value to set. Included once, by secret.yaml.
*/}}
{{- define "notify.validate" -}}
{{- $a := .Values.auth -}}
{{- if not (or $a.existingSecret $a.jwtSecret $a.jwksUrl) -}}
{{- fail "auth: no way to verify tokens: set auth.jwtSecret (an HS256 secret of at least 32 bytes, e.g. `openssl rand -base64 48`), auth.existingSecret (a Secret holding JWT_SECRET) or auth.jwksUrl" -}}
{{- end -}}
{{- if and $a.jwtSecret (not $a.existingSecret) (lt (len $a.jwtSecret) 32) -}}
{{- fail (printf "auth.jwtSecret has %d bytes; it needs at least 32 (e.g. `openssl rand -base64 48`)" (len $a.jwtSecret)) -}}
{{- end -}}
{{- if not (or .Values.database.existingSecret .Values.database.url) -}}
{{- fail "database: set database.url (postgres://user:password@host:5432/notify?sslmode=require) or database.existingSecret (a Secret holding DATABASE_URL)" -}}
{{- end -}}
{{- if not (or .Values.webhooks.existingSecret .Values.webhooks.secretsKeys) -}}
{{- fail "webhooks: set webhooks.secretsKeys (e.g. \"k1:$(openssl rand -base64 32)\") or webhooks.existingSecret (a Secret holding WEBHOOK_SECRETS_KEYS)" -}}
{{- end -}}
{{- if and (not .Values.nats.enabled) (not .Values.natsClient.url) -}}
{{- fail "natsClient.url: nats.enabled is false, so name your NATS cluster's servers (nats://n1:4222,nats://n2:4222,nats://n3:4222)" -}}
{{- end -}}
{{- if lt (int .Values.streamReplicas) 1 -}}
{{- fail "streamReplicas must be at least 1" -}}
{{- end -}}
{{- $servers := include "notify.natsServers" . | int -}}
{{- if lt $servers (int .Values.streamReplicas) -}}
{{- if .Values.nats.enabled -}}
{{- fail (printf "streamReplicas is %d but the NATS cluster has %d server(s): set nats.config.cluster.replicas to at least %d (with nats.config.cluster.enabled=true), or lower streamReplicas" (int .Values.streamReplicas) $servers (int .Values.streamReplicas)) -}}
{{- else -}}
{{- fail (printf "streamReplicas is %d but natsClient.clusterSize says your NATS cluster has %d server(s): lower streamReplicas, or grow the cluster and set natsClient.clusterSize" (int .Values.streamReplicas) $servers) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.natsClient.user (not .Values.natsClient.password) -}}
{{- fail "natsClient.user is set without natsClient.password" -}}
{{- end -}}
{{- if and .Values.natsClient.user .Values.natsClient.existingSecret -}}
{{- fail "natsClient.user and natsClient.existingSecret are both set: choose one" -}}
{{- end -}}
{{- if and .Values.ingress.enabled (not .Values.ingress.host) -}}
{{- fail "ingress.host: name the host that serves the product (or set ingress.enabled=false)" -}}
{{- end -}}
{{- if and .Values.httpRoute.enabled (not .Values.httpRoute.parentRefs) -}}
{{- fail "httpRoute.parentRefs: name the Gateway the HTTPRoute attaches to" -}}
{{- end -}}
{{- end -}}

{{/* A secretKeyRef env var: (dict "name" VAR "secret" NAME "key" KEY). */}}
{{- define "notify.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
{{- end -}}

{{/* The environment of one service: (dict "root" $ "key" <values key> "c" <component>). */}}
{{- define "notify.env" -}}
{{- $ := .root -}}
{{- $v := index $.Values .key -}}
{{- $secret := include "notify.secretName" $ -}}
- name: NATS_URL
  value: {{ include "notify.natsURL" $ | quote }}
- name: STREAM_REPLICAS
  value: {{ $.Values.streamReplicas | quote }}
- name: LOG_LEVEL
  value: {{ $.Values.logLevel | quote }}
{{- with $.Values.auth }}
{{- if .existingSecret }}
{{ include "notify.secretEnv" (dict "name" "JWT_SECRET" "secret" .existingSecret "key" .existingSecretKey) }}
{{- else if .jwtSecret }}
{{ include "notify.secretEnv" (dict "name" "JWT_SECRET" "secret" $secret "key" "JWT_SECRET") }}
{{- else }}
- name: JWT_JWKS_URL
  value: {{ .jwksUrl | quote }}
{{- end }}
{{- if .issuer }}
- name: JWT_ISSUER
  value: {{ .issuer | quote }}
{{- end }}
{{- if .audience }}
- name: JWT_AUDIENCE
  value: {{ .audience | quote }}
{{- end }}
{{- end }}
{{- if .c.db }}
{{- with $.Values.database }}
{{ include "notify.secretEnv" (dict "name" "DATABASE_URL" "secret" (.existingSecret | default $secret) "key" (ternary .existingSecretKey "DATABASE_URL" (not (empty .existingSecret)))) }}
{{- end }}
{{- end }}
{{- if $.Values.natsClient.user }}
- name: NATS_USER
  value: {{ $.Values.natsClient.user | quote }}
{{ include "notify.secretEnv" (dict "name" "NATS_PASSWORD" "secret" $secret "key" "NATS_PASSWORD") }}
{{- end }}
{{- if index $.Values.natsClient.credsSecrets .key }}
- name: NATS_CREDS
  value: /etc/notify/nats/nats.creds
{{- end }}
{{- if eq .key "realtimeGateway" }}
- name: GATEWAY_SHUTDOWN_GRACE
  value: {{ printf "%ds" (int $v.shutdownGraceSeconds) | quote }}
{{- $host := $.Values.ingress.host }}
{{- $origins := $v.allowedOrigins | default (ternary (list (printf "https://%s" $host)) (list (printf "https://%s" $host) (printf "http://%s" $host)) (not (empty $.Values.ingress.tlsSecret))) }}
- name: GATEWAY_ALLOWED_ORIGINS
  value: {{ join "," $origins | quote }}
{{- with $v.trustedProxies }}
- name: GATEWAY_TRUSTED_PROXIES
  value: {{ join "," . | quote }}
{{- end }}
{{- end }}
{{- if eq .key "webhookDispatcher" }}
{{- with $.Values.webhooks }}
{{ include "notify.secretEnv" (dict "name" "WEBHOOK_SECRETS_KEYS" "secret" (.existingSecret | default $secret) "key" (ternary .existingSecretKey "WEBHOOK_SECRETS_KEYS" (not (empty .existingSecret)))) }}
{{- end }}
- name: WEBHOOK_TIMEOUT
  value: {{ printf "%ds" (int $v.timeoutSeconds) | quote }}
{{- end }}
{{- range $name, $value := $v.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}
