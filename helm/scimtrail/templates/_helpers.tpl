{{/* ---------------------------------------------------------------- names */}}

{{- define "scimtrail.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name prefix. Kept short enough that "<fullname>-enricher-headless" fits the
63 characters of a Service name and pod names ("<fullname>-enricher-12") fit too.
*/}}
{{- define "scimtrail.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "scimtrail.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The services, in pipeline order, and which of them use Kafka transactions. */}}
{{- define "scimtrail.services" -}}
ingest enricher detector sink
{{- end }}

{{- define "scimtrail.transactional" -}}
ingest enricher detector
{{- end }}

{{/* Name of one service's resources: (dict "root" $ "name" "ingest") */}}
{{- define "scimtrail.componentName" -}}
{{- printf "%s-%s" (include "scimtrail.fullname" .root) .name }}
{{- end }}

{{- define "scimtrail.configMapName" -}}
{{- printf "%s-config" (include "scimtrail.fullname" .) }}
{{- end }}

{{- define "scimtrail.credentialsSecretName" -}}
{{- printf "%s-credentials" (include "scimtrail.fullname" .) }}
{{- end }}

{{- define "scimtrail.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "scimtrail.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* --------------------------------------------------------------- labels */}}

{{- define "scimtrail.version" -}}
{{- default .Chart.AppVersion .Values.image.tag | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "scimtrail.labels" -}}
helm.sh/chart: {{ include "scimtrail.chart" . }}
app.kubernetes.io/name: {{ include "scimtrail.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "scimtrail.version" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: scimtrail
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* (dict "root" $ "name" "ingest") */}}
{{- define "scimtrail.componentLabels" -}}
{{ include "scimtrail.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* Immutable StatefulSet/Deployment selector: never add labels here. */}}
{{- define "scimtrail.selectorLabels" -}}
app.kubernetes.io/name: {{ include "scimtrail.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* ---------------------------------------------------------------- image */}}

{{- define "scimtrail.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* -------------------------------------------------------------- secrets */}}

{{/* Name of the Secret a reference points at: (dict "root" $ "ref" .Values.kafkaSasl "what" "kafkaSasl") */}}
{{- define "scimtrail.secretRefName" -}}
{{- if .root.Values.secrets.create }}
{{- include "scimtrail.credentialsSecretName" .root }}
{{- else }}
{{- required (printf "%s.existingSecret is required when %s is used (or set secrets.create=true)" .what .what) .ref.existingSecret }}
{{- end }}
{{- end }}

{{/* -------------------------------------------------- enricher files */}}

{{/*
The enricher's role directory and checkpoint key are mounted as directories (no
subPath: the kubelet then updates a mounted ConfigMap in place, and the enricher
reloads the role directory when its modification time changes).
*/}}
{{- define "scimtrail.enricher.rolesDir" -}}
/etc/scimtrail/roles
{{- end }}

{{- define "scimtrail.enricher.checkpointKeyDir" -}}
/etc/scimtrail/checkpoint-key
{{- end }}

{{/* Where the role directory comes from: "inline" (enricher.roles), "existing" (enricher.rolesExistingConfigMap) or "" (none, or the enricher is disabled). */}}
{{- define "scimtrail.enricher.rolesSource" -}}
{{- $e := .Values.enricher }}
{{- if $e.enabled }}
{{- if $e.roles }}inline{{ else if $e.rolesExistingConfigMap.name }}existing{{ end }}
{{- end }}
{{- end }}

{{- define "scimtrail.enricher.rolesConfigMapName" -}}
{{- if eq (include "scimtrail.enricher.rolesSource" .) "existing" }}
{{- .Values.enricher.rolesExistingConfigMap.name }}
{{- else }}
{{- printf "%s-enricher-roles" (include "scimtrail.fullname" .) }}
{{- end }}
{{- end }}

{{/* "true" when the enricher signs checkpoints with a key from enricher.checkpointKey. */}}
{{- define "scimtrail.enricher.checkpointKeyEnabled" -}}
{{- if and .Values.enricher.enabled .Values.enricher.checkpointKey.existingSecret }}true{{ end }}
{{- end }}

{{/* The role directory as rendered into <fullname>-enricher-roles (its roles.yaml). */}}
{{- define "scimtrail.enricher.rolesYaml" -}}
# Role directory of the scimtrail enricher, rendered by the Helm chart from
# enricher.roles. Reloaded by running enrichers when it changes (no restart).
{{ toYaml .Values.enricher.roles }}
{{- end }}

{{/* -------------------------------------------------- detector rules */}}

{{/*
The detector's rules file (docs/rules.md) is mounted as a directory, like the
enricher's role directory: no subPath, so the kubelet updates a mounted ConfigMap
in place and the detector reloads the file when its modification time changes.
*/}}
{{- define "scimtrail.detector.rulesDir" -}}
/etc/scimtrail/rules
{{- end }}

{{/* Where the rules file comes from: "inline" (detector.rules), "existing" (detector.rulesExistingConfigMap) or "" (none: the built-in default pack, or the detector is disabled). */}}
{{- define "scimtrail.detector.rulesSource" -}}
{{- $d := .Values.detector }}
{{- if $d.enabled }}
{{- if $d.rules }}inline{{ else if $d.rulesExistingConfigMap.name }}existing{{ end }}
{{- end }}
{{- end }}

{{- define "scimtrail.detector.rulesConfigMapName" -}}
{{- if eq (include "scimtrail.detector.rulesSource" .) "existing" }}
{{- .Values.detector.rulesExistingConfigMap.name }}
{{- else }}
{{- printf "%s-detector-rules" (include "scimtrail.fullname" .) }}
{{- end }}
{{- end }}

{{/* The rules file as rendered into <fullname>-detector-rules (its rules.yaml). */}}
{{- define "scimtrail.detector.rulesYaml" -}}
# Detection rules of the scimtrail detector (docs/rules.md), rendered by the Helm
# chart from detector.rules. Reloaded by running detectors when it changes (no restart).
{{ toYaml .Values.detector.rules }}
{{- end }}

{{- define "scimtrail.schemaRegistryConfigured" -}}
{{- if or .Values.schemaRegistryAuth.enabled .Values.config.schema_registry.url }}true{{ end }}
{{- end }}

{{/* ------------------------------------------------------ validation checks */}}

{{/*
Checks that need more than one value (the rest is in values.schema.json). They
mirror the services' own start-up checks, so a bad release fails at install time
instead of crash-looping.
*/}}
{{- define "scimtrail.validate" -}}
{{- $c := .Values.config }}
{{- $enabled := list }}
{{- range $name := splitList " " (include "scimtrail.services" .) }}
{{- if (index $.Values $name).enabled }}{{ $enabled = append $enabled $name }}{{ end }}
{{- end }}
{{- range $name := $enabled }}
{{- $as := (index $.Values $name).autoscaling }}
{{- if and $as.enabled (gt (int $as.minReplicas) (int $as.maxReplicas)) }}
{{- fail (printf "%s.autoscaling.minReplicas (%d) must not exceed %s.autoscaling.maxReplicas (%d)" $name (int $as.minReplicas) $name (int $as.maxReplicas)) }}
{{- end }}
{{- end }}
{{- if not $enabled }}
{{- fail "no service is enabled: set at least one of ingest.enabled, enricher.enabled, detector.enabled, sink.enabled" }}
{{- end }}
{{- $topics := list $c.topics.raw $c.topics.events $c.topics.enriched $c.topics.alerts $c.topics.dlq ($c.topics.checkpoints | default "audit.checkpoints.v1") }}
{{- if ne (len (uniq $topics)) 6 }}
{{- fail (printf "config.topics: raw, events, enriched, alerts, dlq and checkpoints need distinct names, got %s" (join ", " $topics)) }}
{{- end }}
{{- $ce := $c.enricher | default dict }}
{{- if $ce.roles_file }}
{{- fail "config.enricher.roles_file is set by the chart: give the role directory as enricher.roles (inline) or enricher.rolesExistingConfigMap" }}
{{- end }}
{{- if $ce.checkpoint_key_file }}
{{- fail "config.enricher.checkpoint_key_file is set by the chart: give the key's Secret as enricher.checkpointKey.existingSecret (and .key)" }}
{{- end }}
{{- if and .Values.enricher.roles .Values.enricher.rolesExistingConfigMap.name }}
{{- fail "set either enricher.roles (an inline role directory) or enricher.rolesExistingConfigMap.name, not both" }}
{{- end }}
{{- $cd := $c.detector | default dict }}
{{- if $cd.rules_file }}
{{- fail "config.detector.rules_file is set by the chart: give the rules file as detector.rules (inline) or detector.rulesExistingConfigMap (unset both for the built-in default pack)" }}
{{- end }}
{{- if and .Values.detector.rules .Values.detector.rulesExistingConfigMap.name }}
{{- fail "set either detector.rules (an inline rules file) or detector.rulesExistingConfigMap.name, not both" }}
{{- end }}
{{- /* What the schema cannot say about detector.rules; the detector checks the rest (conditions, fields, durations) when it loads the file. */}}
{{- $ids := dict }}
{{- range $i, $r := (.Values.detector.rules | default dict).rules | default list }}
{{- $kinds := list }}
{{- range $k := list "threshold" "error_rate" "policy" "match" "new_value" "schedule" }}
{{- if hasKey $r $k }}{{ $kinds = append $kinds $k }}{{ end }}
{{- end }}
{{- if ne (len $kinds) 1 }}
{{- fail (printf "detector.rules.rules[%d] (id %q): a rule has exactly one kind section (threshold, error_rate, policy, match, new_value or schedule); found %s" $i $r.id (ternary "none" (join ", " $kinds) (empty $kinds))) }}
{{- end }}
{{- if hasKey $ids $r.id }}
{{- fail (printf "detector.rules.rules[%d] (id %q): duplicate id; rules[%d] has it already" $i $r.id (index $ids $r.id)) }}
{{- end }}
{{- $_ := set $ids $r.id $i }}
{{- end }}
{{- if and $c.sink.initial_backoff_ms $c.sink.max_backoff_ms }}
{{- if lt (float64 $c.sink.max_backoff_ms) (float64 $c.sink.initial_backoff_ms) }}
{{- fail (printf "config.sink.max_backoff_ms (%v) must be at least config.sink.initial_backoff_ms (%v)" $c.sink.max_backoff_ms $c.sink.initial_backoff_ms) }}
{{- end }}
{{- end }}
{{- range $section := list "properties" "consumer_properties" "producer_properties" }}
{{- range $k, $_ := (index $c.kafka $section) }}
{{- if regexMatch "(?i)(password|secret)" $k }}
{{- fail (printf "config.kafka.%s.%s: secrets must not go into the ConfigMap; use kafkaSasl / kafkaTls (or extraEnv with a secretKeyRef: SCIMTRAIL__KAFKA__PROPERTIES__%s)" $section $k (upper (regexReplaceAll "[.]" $k "_"))) }}
{{- end }}
{{- end }}
{{- end }}
{{- if regexMatch "^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*@" ($c.schema_registry.url | default "") }}
{{- fail "config.schema_registry.url: credentials in the URL would land in the ConfigMap; put the URL in a Secret and use schemaRegistryAuth" }}
{{- end }}
{{- if and .Values.schemaRegistryAuth.enabled $c.schema_registry.url }}
{{- fail "set either config.schema_registry.url or schemaRegistryAuth (a URL with credentials from a Secret), not both" }}
{{- end }}
{{- if .Values.secrets.create }}
{{- $s := .Values.secrets }}
{{- if and .Values.sink.enabled (not $s.webhooks) }}
{{- fail "secrets.create=true: secrets.webhooks must list at least one webhook URL for the sink (or set sink.enabled=false)" }}
{{- end }}
{{- if and .Values.kafkaSasl.enabled (not $s.kafkaSaslPassword) }}
{{- fail "secrets.create=true and kafkaSasl.enabled: secrets.kafkaSaslPassword is required" }}
{{- end }}
{{- if and .Values.kafkaSasl.enabled .Values.kafkaSasl.usernameKey (not $s.kafkaSaslUsername) }}
{{- fail "secrets.create=true and kafkaSasl.usernameKey is set: secrets.kafkaSaslUsername is required" }}
{{- end }}
{{- if and .Values.kafkaTls.enabled (not $s.kafkaTlsCa) }}
{{- fail "secrets.create=true and kafkaTls.enabled: secrets.kafkaTlsCa (PEM) is required" }}
{{- end }}
{{- if and .Values.kafkaTls.enabled .Values.kafkaTls.clientCert (or (not $s.kafkaTlsCert) (not $s.kafkaTlsKey)) }}
{{- fail "secrets.create=true and kafkaTls.clientCert: secrets.kafkaTlsCert and secrets.kafkaTlsKey (PEM) are required" }}
{{- end }}
{{- if and .Values.kafkaTls.enabled .Values.kafkaTls.keyPasswordKey (not $s.kafkaTlsKeyPassword) }}
{{- fail "secrets.create=true and kafkaTls.keyPasswordKey is set: secrets.kafkaTlsKeyPassword is required" }}
{{- end }}
{{- if and .Values.schemaRegistryAuth.enabled (not $s.schemaRegistryUrl) }}
{{- fail "secrets.create=true and schemaRegistryAuth.enabled: secrets.schemaRegistryUrl is required" }}
{{- end }}
{{- range $i, $u := $s.webhooks }}
{{- if not (regexMatch "^https?://[^,\\s]+$" $u) }}
{{- fail (printf "secrets.webhooks[%d]: %q is not an http(s) URL without commas or spaces" $i $u) }}
{{- end }}
{{- end }}
{{- end }}
{{- if .Values.monitoring.prometheusRule.enabled }}
{{- if not (.Files.Get "files/prometheus-rules.yaml") }}
{{- fail "monitoring.prometheusRule.enabled: the chart's files/prometheus-rules.yaml is missing or empty" }}
{{- end }}
{{- end }}
{{- end }}

{{/* ------------------------------------------------------------ config.toml */}}

{{/* A TOML key: bare when it may be, else a quoted (JSON-escaped) string. */}}
{{- define "scimtrail.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{/*
The scalar and array entries of a table: (dict "table" $t). Nulls and nested maps
are skipped; strings, numbers, booleans and arrays of them are written as JSON,
which is also valid TOML for these types.
*/}}
{{- define "scimtrail.toml.entries" -}}
{{- range $k, $v := .table }}
{{- if not (or (kindIs "invalid" $v) (kindIs "map" $v)) }}
{{ include "scimtrail.toml.key" $k }} = {{ toJson $v }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A sub-table of flat properties with dotted names, always quoted:
(dict "name" "kafka.properties" "table" $t "strings" false). With "strings" true
every value is written as a string (topics.settings is a map of strings); whole
numbers are written without an exponent either way.
*/}}
{{- define "scimtrail.toml.properties" -}}
{{- $strings := .strings }}
{{- if .table }}

[{{ .name }}]
{{- range $k, $v := .table }}
{{- if not (kindIs "invalid" $v) }}
{{- if and $strings (kindIs "float64" $v) }}
{{- if eq $v (float64 (int64 $v)) }}{{ $v = printf "%d" (int64 $v) }}{{ else }}{{ $v = toJson $v }}{{ end }}
{{- else if $strings }}
{{- $v = toString $v }}
{{- end }}
{{ toJson $k }} = {{ toJson $v }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
kafka.properties: what kafkaSasl/kafkaTls imply, overridden by
config.kafka.properties. Returned as JSON.
*/}}
{{- define "scimtrail.kafkaProperties" -}}
{{- $derived := dict }}
{{- $sasl := .Values.kafkaSasl.enabled }}
{{- $tls := .Values.kafkaTls.enabled }}
{{- if and $sasl $tls }}
{{- $_ := set $derived "security.protocol" "SASL_SSL" }}
{{- else if $sasl }}
{{- $_ := set $derived "security.protocol" "SASL_PLAINTEXT" }}
{{- else if $tls }}
{{- $_ := set $derived "security.protocol" "SSL" }}
{{- end }}
{{- if $sasl }}
{{- $_ := set $derived "sasl.mechanism" .Values.kafkaSasl.mechanism }}
{{- if and .Values.kafkaSasl.username (not .Values.kafkaSasl.usernameKey) }}
{{- $_ := set $derived "sasl.username" .Values.kafkaSasl.username }}
{{- end }}
{{- end }}
{{- if $tls }}
{{- $dir := trimSuffix "/" .Values.kafkaTls.mountPath }}
{{- $_ := set $derived "ssl.ca.location" (printf "%s/ca.crt" $dir) }}
{{- if .Values.kafkaTls.clientCert }}
{{- $_ := set $derived "ssl.certificate.location" (printf "%s/tls.crt" $dir) }}
{{- $_ := set $derived "ssl.key.location" (printf "%s/tls.key" $dir) }}
{{- end }}
{{- end }}
{{- $user := dict }}
{{- range $k, $v := .Values.config.kafka.properties }}
{{- if not (kindIs "invalid" $v) }}{{ $_ := set $user $k $v }}{{ end }}
{{- end }}
{{- toJson (merge $user $derived) }}
{{- end }}

{{/*
The whole config.toml. Its sha256 is the pods' checksum/config annotation, so
any change here rolls every service.
*/}}
{{- define "scimtrail.configToml" -}}
{{- $c := .Values.config -}}
# scimtrail configuration, rendered by the Helm chart {{ include "scimtrail.chart" . }}.
# Shared by every service: each reads kafka, topics, admin, log, schema_registry and
# its own section. kafka.instance_id (the pod name) and secrets come from the
# environment.

[kafka]
{{- include "scimtrail.toml.entries" (dict "table" $c.kafka) }}
{{- include "scimtrail.toml.properties" (dict "name" "kafka.properties" "table" (include "scimtrail.kafkaProperties" . | fromJson)) }}
{{- include "scimtrail.toml.properties" (dict "name" "kafka.consumer_properties" "table" $c.kafka.consumer_properties) }}
{{- include "scimtrail.toml.properties" (dict "name" "kafka.producer_properties" "table" $c.kafka.producer_properties) }}

[topics]
{{- include "scimtrail.toml.entries" (dict "table" $c.topics) }}
{{- include "scimtrail.toml.properties" (dict "name" "topics.settings" "table" $c.topics.settings "strings" true) }}

[admin]
listen = {{ printf "0.0.0.0:%d" (int .Values.adminPort) | toJson }}

[log]
{{- include "scimtrail.toml.entries" (dict "table" $c.log) }}
{{- if $c.schema_registry.url }}

[schema_registry]
url = {{ toJson $c.schema_registry.url }}
{{- end }}
{{- range $section := list "ingest" "enricher" "detector" "sink" }}
{{- $t := deepCopy (index $c $section | default dict) }}
{{- if eq $section "enricher" }}
{{- if include "scimtrail.enricher.rolesSource" $ }}
{{- $_ := set $t "roles_file" (printf "%s/roles.yaml" (include "scimtrail.enricher.rolesDir" $)) }}
{{- end }}
{{- if include "scimtrail.enricher.checkpointKeyEnabled" $ }}
{{- $_ := set $t "checkpoint_key_file" (printf "%s/key.pem" (include "scimtrail.enricher.checkpointKeyDir" $)) }}
{{- end }}
{{- end }}
{{- if and (eq $section "detector") (include "scimtrail.detector.rulesSource" $) }}
{{- $_ := set $t "rules_file" (printf "%s/rules.yaml" (include "scimtrail.detector.rulesDir" $)) }}
{{- end }}
{{- if $t }}

[{{ $section }}]
{{- include "scimtrail.toml.entries" (dict "table" $t) }}
{{- /* sub-tables, e.g. [enricher.privileged] */}}
{{- range $k, $v := $t }}
{{- if and (kindIs "map" $v) $v }}

[{{ $section }}.{{ include "scimtrail.toml.key" $k }}]
{{- include "scimtrail.toml.entries" (dict "table" $v) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{ end }}

{{/* ------------------------------------------------------------- pod spec */}}

{{/* env entries of one service's container: (dict "root" $ "name" "sink" "svc" $svc) */}}
{{- define "scimtrail.env" -}}
{{- $root := .root }}
{{- $v := .root.Values -}}
- name: SCIMTRAIL_CONFIG
  value: /etc/scimtrail/config.toml
- name: SCIMTRAIL__ADMIN__LISTEN
  value: {{ printf "0.0.0.0:%d" (int $v.adminPort) | quote }}
- name: SCIMTRAIL__KAFKA__INSTANCE_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- if $v.kafkaSasl.enabled }}
{{- $secret := include "scimtrail.secretRefName" (dict "root" $root "ref" $v.kafkaSasl "what" "kafkaSasl") }}
{{- if $v.kafkaSasl.usernameKey }}
- name: SCIMTRAIL__KAFKA__PROPERTIES__SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $v.kafkaSasl.usernameKey }}
{{- end }}
- name: SCIMTRAIL__KAFKA__PROPERTIES__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $v.kafkaSasl.passwordKey }}
{{- end }}
{{- if and $v.kafkaTls.enabled $v.kafkaTls.clientCert $v.kafkaTls.keyPasswordKey }}
- name: SCIMTRAIL__KAFKA__PROPERTIES__SSL_KEY_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "scimtrail.secretRefName" (dict "root" $root "ref" $v.kafkaTls "what" "kafkaTls") }}
      key: {{ $v.kafkaTls.keyPasswordKey }}
{{- end }}
{{- if $v.schemaRegistryAuth.enabled }}
- name: SCIMTRAIL__SCHEMA_REGISTRY__URL
  valueFrom:
    secretKeyRef:
      name: {{ include "scimtrail.secretRefName" (dict "root" $root "ref" $v.schemaRegistryAuth "what" "schemaRegistryAuth") }}
      key: {{ $v.schemaRegistryAuth.urlKey }}
{{- end }}
{{- if eq .name "sink" }}
- name: SCIMTRAIL__SINK__WEBHOOKS
  valueFrom:
    secretKeyRef:
      name: {{ include "scimtrail.secretRefName" (dict "root" $root "ref" $v.webhooks "what" "webhooks") }}
      key: {{ $v.webhooks.key }}
{{- end }}
{{- /* extraEnv: global, then per-service; a later entry replaces one of the same name */}}
{{- $extra := dict }}
{{- $order := list }}
{{- range $e := concat ($v.extraEnv | default list) (.svc.extraEnv | default list) }}
{{- if not (hasKey $extra $e.name) }}{{ $order = append $order $e.name }}{{ end }}
{{- $_ := set $extra $e.name $e }}
{{- end }}
{{- range $n := $order }}
- {{ toYaml (index $extra $n) | nindent 2 | trim }}
{{- end }}
{{- end }}

{{/* httpGet probe: (dict "root" $ "path" "/healthz" "probe" $svc.livenessProbe) */}}
{{- define "scimtrail.probe" -}}
httpGet:
  path: {{ .path }}
  port: admin
{{- with .probe }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The pod template of one service: (dict "root" $ "name" "ingest") */}}
{{- define "scimtrail.podTemplate" -}}
{{- $root := .root }}
{{- $v := .root.Values }}
{{- $name := .name }}
{{- $svc := index $v $name }}
{{- $ctx := dict "root" $root "name" $name -}}
metadata:
  labels:
    {{- include "scimtrail.componentLabels" $ctx | nindent 4 }}
    {{- with (merge (deepCopy ($svc.podLabels | default dict)) ($v.podLabels | default dict)) }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include "scimtrail.configToml" $root | sha256sum }}
    {{- if $v.secrets.create }}
    checksum/secret: {{ include "scimtrail.credentialsData" $root | sha256sum }}
    {{- end }}
    kubectl.kubernetes.io/default-container: {{ $name }}
    {{- with (merge (deepCopy ($svc.podAnnotations | default dict)) ($v.podAnnotations | default dict)) }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "scimtrail.serviceAccountName" $root }}
  automountServiceAccountToken: {{ $v.serviceAccount.automountServiceAccountToken }}
  # No Service environment variables: the services take SCIMTRAIL_* settings from
  # the environment, and only those the chart sets below.
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ $svc.terminationGracePeriodSeconds }}
  {{- with ($svc.priorityClassName | default $v.priorityClassName) }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  {{- with (merge (deepCopy ($svc.nodeSelector | default dict)) ($v.nodeSelector | default dict)) }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with (concat ($v.tolerations | default list) ($svc.tolerations | default list)) }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if $svc.affinity }}
  affinity:
    {{- toYaml $svc.affinity | nindent 4 }}
  {{- else if eq $v.podAntiAffinity.type "soft" }}
  affinity:
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: {{ $v.podAntiAffinity.weight }}
          podAffinityTerm:
            topologyKey: {{ $v.podAntiAffinity.topologyKey }}
            labelSelector:
              matchLabels:
                {{- include "scimtrail.selectorLabels" $ctx | nindent 16 }}
  {{- else if eq $v.podAntiAffinity.type "hard" }}
  affinity:
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        - topologyKey: {{ $v.podAntiAffinity.topologyKey }}
          labelSelector:
            matchLabels:
              {{- include "scimtrail.selectorLabels" $ctx | nindent 14 }}
  {{- end }}
  {{- if $svc.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml $svc.topologySpreadConstraints | nindent 4 }}
  {{- else if $v.topologySpread.enabled }}
  topologySpreadConstraints:
    - maxSkew: {{ $v.topologySpread.maxSkew }}
      topologyKey: {{ $v.topologySpread.topologyKey }}
      whenUnsatisfiable: {{ $v.topologySpread.whenUnsatisfiable }}
      labelSelector:
        matchLabels:
          {{- include "scimtrail.selectorLabels" $ctx | nindent 10 }}
  {{- end }}
  containers:
    - name: {{ $name }}
      image: {{ include "scimtrail.image" $root | quote }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command:
        - /usr/local/bin/scimtrail-{{ $name }}
      env:
        {{- include "scimtrail.env" (dict "root" $root "name" $name "svc" $svc) | nindent 8 }}
      ports:
        - name: admin
          containerPort: {{ $v.adminPort }}
          protocol: TCP
      startupProbe:
        {{- include "scimtrail.probe" (dict "path" "/healthz" "probe" $svc.startupProbe) | nindent 8 }}
      livenessProbe:
        {{- include "scimtrail.probe" (dict "path" "/healthz" "probe" $svc.livenessProbe) | nindent 8 }}
      readinessProbe:
        {{- include "scimtrail.probe" (dict "path" "/readyz" "probe" $svc.readinessProbe) | nindent 8 }}
      resources:
        {{- toYaml $svc.resources | nindent 8 }}
      securityContext:
        {{- toYaml $v.containerSecurityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/scimtrail/config.toml
          subPath: config.toml
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if $v.kafkaTls.enabled }}
        - name: kafka-tls
          mountPath: {{ $v.kafkaTls.mountPath }}
          readOnly: true
        {{- end }}
        {{- if eq $name "enricher" }}
        {{- if include "scimtrail.enricher.rolesSource" $root }}
        # A directory, not a subPath: ConfigMap updates reach the pod and are reloaded.
        - name: roles
          mountPath: {{ include "scimtrail.enricher.rolesDir" $root }}
          readOnly: true
        {{- end }}
        {{- if include "scimtrail.enricher.checkpointKeyEnabled" $root }}
        - name: checkpoint-key
          mountPath: {{ include "scimtrail.enricher.checkpointKeyDir" $root }}
          readOnly: true
        {{- end }}
        {{- end }}
        {{- if and (eq $name "detector") (include "scimtrail.detector.rulesSource" $root) }}
        # A directory, not a subPath: ConfigMap updates reach the pod and are reloaded.
        - name: rules
          mountPath: {{ include "scimtrail.detector.rulesDir" $root }}
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "scimtrail.configMapName" $root }}
        items:
          - key: config.toml
            path: config.toml
    - name: tmp
      {{- with $v.tmpVolume.sizeLimit }}
      emptyDir:
        sizeLimit: {{ . }}
      {{- else }}
      emptyDir: {}
      {{- end }}
    {{- if $v.kafkaTls.enabled }}
    - name: kafka-tls
      secret:
        secretName: {{ include "scimtrail.secretRefName" (dict "root" $root "ref" $v.kafkaTls "what" "kafkaTls") }}
        defaultMode: 0440
        items:
          - key: {{ $v.kafkaTls.caKey }}
            path: ca.crt
          {{- if $v.kafkaTls.clientCert }}
          - key: {{ $v.kafkaTls.certKey }}
            path: tls.crt
          - key: {{ $v.kafkaTls.keyKey }}
            path: tls.key
          {{- end }}
    {{- end }}
    {{- if eq $name "enricher" }}
    {{- $roles := include "scimtrail.enricher.rolesSource" $root }}
    {{- if $roles }}
    - name: roles
      configMap:
        name: {{ include "scimtrail.enricher.rolesConfigMapName" $root }}
        items:
          - key: {{ ternary $v.enricher.rolesExistingConfigMap.key "roles.yaml" (eq $roles "existing") }}
            path: roles.yaml
    {{- end }}
    {{- if include "scimtrail.enricher.checkpointKeyEnabled" $root }}
    - name: checkpoint-key
      secret:
        secretName: {{ $v.enricher.checkpointKey.existingSecret }}
        defaultMode: 0440
        items:
          - key: {{ $v.enricher.checkpointKey.key }}
            path: key.pem
    {{- end }}
    {{- end }}
    {{- if eq $name "detector" }}
    {{- $rules := include "scimtrail.detector.rulesSource" $root }}
    {{- if $rules }}
    - name: rules
      configMap:
        name: {{ include "scimtrail.detector.rulesConfigMapName" $root }}
        items:
          - key: {{ ternary $v.detector.rulesExistingConfigMap.key "rules.yaml" (eq $rules "existing") }}
            path: rules.yaml
    {{- end }}
    {{- end }}
{{- end }}

{{/* data of the created credentials Secret (secrets.create), as YAML. */}}
{{- define "scimtrail.credentialsData" -}}
{{- $v := .Values }}
{{- $s := .Values.secrets }}
{{- $data := dict }}
{{- if .Values.sink.enabled }}
{{- $_ := set $data $v.webhooks.key (join "," $s.webhooks) }}
{{- end }}
{{- if $v.kafkaSasl.enabled }}
{{- $_ := set $data $v.kafkaSasl.passwordKey $s.kafkaSaslPassword }}
{{- if $v.kafkaSasl.usernameKey }}
{{- $_ := set $data $v.kafkaSasl.usernameKey $s.kafkaSaslUsername }}
{{- end }}
{{- end }}
{{- if $v.kafkaTls.enabled }}
{{- $_ := set $data $v.kafkaTls.caKey $s.kafkaTlsCa }}
{{- if $v.kafkaTls.clientCert }}
{{- $_ := set $data $v.kafkaTls.certKey $s.kafkaTlsCert }}
{{- $_ := set $data $v.kafkaTls.keyKey $s.kafkaTlsKey }}
{{- if $v.kafkaTls.keyPasswordKey }}
{{- $_ := set $data $v.kafkaTls.keyPasswordKey $s.kafkaTlsKeyPassword }}
{{- end }}
{{- end }}
{{- end }}
{{- if $v.schemaRegistryAuth.enabled }}
{{- $_ := set $data $v.schemaRegistryAuth.urlKey $s.schemaRegistryUrl }}
{{- end }}
{{- range $k, $val := $data }}
{{ $k }}: {{ $val | b64enc | quote }}
{{- end }}
{{- end }}
