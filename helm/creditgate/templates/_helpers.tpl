{{/* Names, labels and shared pieces. Every template here takes the chart's root context,
unless it says otherwise. */}}

{{- define "creditgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-creditgate, or the release name when it already contains the chart name. */}}
{{- define "creditgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Selector labels of one component. Context: (dict "ctx" $ "component" "ledger"). */}}
{{- define "creditgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "creditgate.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of one component. Context: (dict "ctx" $ "component" "ledger"). */}}
{{- define "creditgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{ include "creditgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: creditgate
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "creditgate.image" -}}
{{- $image := .Values.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "creditgate.catalog.configMapName" -}}
{{- default (printf "%s-catalog" (include "creditgate.fullname" .)) .Values.catalog.existingConfigMap -}}
{{- end -}}

{{/* The catalog the chart puts in its ConfigMap: catalog.content, else the example. */}}
{{- define "creditgate.catalog.content" -}}
{{- if .Values.catalog.content -}}
{{- .Values.catalog.content -}}
{{- else -}}
{{- .Files.Get "files/example-catalog.yaml" -}}
{{- end -}}
{{- end -}}

{{- define "creditgate.catalog.dir" -}}/etc/creditgate/catalog{{- end -}}

{{/* The catalog ConfigMap mounted as a directory (no subPath) so that edits reach the file. */}}
{{- define "creditgate.catalog.volume" -}}
- name: creditgate-catalog
  configMap:
    name: {{ include "creditgate.catalog.configMapName" . }}
- name: creditgate-tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{- define "creditgate.catalog.volumeMounts" -}}
- name: creditgate-catalog
  mountPath: {{ include "creditgate.catalog.dir" . }}
  readOnly: true
- name: creditgate-tmp
  mountPath: /tmp
{{- end -}}

{{/* Env shared by the sidecar and the ledger: the catalog file, Redis (the bundled one, an
inline URL, or a Secret), the shard count and logging. */}}
{{- define "creditgate.commonEnv" -}}
- name: CREDITGATE_CATALOG
  value: {{ printf "%s/%s" (include "creditgate.catalog.dir" .) .Values.catalog.key | quote }}
- name: CREDITGATE_REDIS
{{- if .Values.redis.enabled }}
  value: {{ printf "redis://%s-redis.%s.svc:%d/0" (include "creditgate.fullname" .) .Release.Namespace (int .Values.redis.port) | quote }}
{{- else if .Values.redisUrl.value }}
  value: {{ .Values.redisUrl.value | quote }}
{{- else if .Values.redisUrl.existingSecret.name }}
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redisUrl.existingSecret.name }}
      key: {{ .Values.redisUrl.existingSecret.key }}
{{- else }}
{{- fail "no Redis: set redisUrl.value, redisUrl.existingSecret.name, or redis.enabled=true" }}
{{- end }}
- name: CREDITGATE_SHARDS
  value: {{ .Values.shards | int | quote }}
- name: CREDITGATE_ENVIRONMENT
  value: {{ .Values.environment | quote }}
- name: CREDITGATE_LOG_LEVEL
  value: {{ .Values.log.level | quote }}
- name: CREDITGATE_LOG_FORMAT
  value: {{ .Values.log.format | quote }}
{{- end -}}

{{- define "creditgate.admin.secretName" -}}
{{- default (printf "%s-admin" (include "creditgate.fullname" .)) .Values.sidecar.admin.existingSecret.name -}}
{{- end -}}

{{- define "creditgate.ledger.tokenSecretName" -}}
{{- default (printf "%s-ledger-token" (include "creditgate.fullname" .)) .Values.ledger.query.existingSecret.name -}}
{{- end -}}

{{/* matchLabels of the gateway pods that carry the sidecar; empty when unknown. */}}
{{- define "creditgate.gateway.podSelector" -}}
{{- if .Values.sidecar.podSelector -}}
{{- toYaml .Values.sidecar.podSelector -}}
{{- else if .Values.gateway.enabled -}}
{{- include "creditgate.selectorLabels" (dict "ctx" . "component" "gateway") -}}
{{- end -}}
{{- end -}}

{{/* "true" when a Prometheus operator resource is to be rendered.
Context: (dict "ctx" $ "enabled" <true|false|"auto"> "kind" "ServiceMonitor"). */}}
{{- define "creditgate.monitoring.on" -}}
{{- $enabled := toString .enabled -}}
{{- $served := .ctx.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" .kind) -}}
{{- if or (eq $enabled "true") (and (eq $enabled "auto") $served) -}}true{{- end -}}
{{- end -}}

{{/* A Secret holding a random token, kept across upgrades (lookup finds the live one).
Context: (dict "ctx" $ "name" "..." "key" "token" "component" "sidecar"). */}}
{{- define "creditgate.tokenSecret" -}}
{{- $live := lookup "v1" "Secret" .ctx.Release.Namespace .name -}}
{{- $token := "" -}}
{{- if and $live $live.data (hasKey $live.data .key) -}}
{{- $token = index $live.data .key -}}
{{- else -}}
{{- $token = randAlphaNum 32 | b64enc -}}
{{- end -}}
apiVersion: v1
kind: Secret
metadata:
  name: {{ .name }}
  labels:
    {{- include "creditgate.labels" (dict "ctx" .ctx "component" .component) | nindent 4 }}
type: Opaque
data:
  {{ .key }}: {{ $token }}
{{- end -}}
