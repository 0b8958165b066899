{{/*
Inject the Creditgate sidecar into a gateway pod. Both templates take the creditgate chart's
context: `.` inside this chart, `.Subcharts.creditgate` in a parent chart that depends on it.

  spec:
    {{- if .Values.creditgate.sidecar.native }}   # a native sidecar goes with the initContainers
    initContainers:
      {{- include "creditgate.sidecar.container" .Subcharts.creditgate | nindent 6 }}
    {{- end }}
    containers:
      - name: gateway
        ...
    volumes:
      {{- include "creditgate.sidecar.volumes" .Subcharts.creditgate | nindent 6 }}

creditgate.sidecar.container renders one list item; with sidecar.native it carries
restartPolicy: Always and belongs under initContainers, else under containers.
*/}}

{{/* "true" when the API listeners are reachable from the pod only. */}}
{{- define "creditgate.sidecar.podLocal" -}}
{{- if has .Values.sidecar.host (list "127.0.0.1" "localhost" "::1") -}}true{{- end -}}
{{- end -}}

{{- define "creditgate.sidecar.adminOn" -}}
{{- if .Values.sidecar.admin.enabled -}}true{{- end -}}
{{- end -}}

{{- define "creditgate.sidecar.container" -}}
{{- $s := .Values.sidecar -}}
{{- if not (or $s.http $s.grpc) -}}
{{- fail "sidecar.http and sidecar.grpc are both false: the sidecar would serve nothing" -}}
{{- end -}}
- name: {{ $s.name }}
  image: {{ include "creditgate.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if $s.native }}
  restartPolicy: Always
  {{- end }}
  args: ["serve"]
  env:
    {{- include "creditgate.commonEnv" . | nindent 4 }}
    - name: CREDITGATE_HOST
      value: {{ $s.host | quote }}
    - name: CREDITGATE_HTTP
      value: {{ $s.http | quote }}
    - name: CREDITGATE_GRPC
      value: {{ $s.grpc | quote }}
    - name: CREDITGATE_PORT
      value: {{ $s.ports.http | int | quote }}
    - name: CREDITGATE_GRPC_PORT
      value: {{ $s.ports.grpc | int | quote }}
    {{- if include "creditgate.sidecar.adminOn" . }}
    - name: CREDITGATE_ADMIN_PORT
      value: {{ $s.ports.admin | int | quote }}
    - name: CREDITGATE_GRPC_ADMIN_PORT
      value: {{ $s.ports.grpcAdmin | int | quote }}
    - name: CREDITGATE_ADMIN_TOKEN
      valueFrom:
        secretKeyRef:
          name: {{ include "creditgate.admin.secretName" . }}
          key: {{ $s.admin.existingSecret.key }}
    {{- end }}
    - name: CREDITGATE_METRICS_HOST
      value: "0.0.0.0"
    - name: CREDITGATE_METRICS_PORT
      value: {{ $s.ports.metrics | int | quote }}
    - name: CREDITGATE_CATALOG_RELOAD_MS
      value: {{ $s.catalogReloadMs | int | quote }}
    - name: CREDITGATE_CACHE_MAX_ENTRIES
      value: {{ $s.cacheMaxEntries | int | quote }}
    - name: CREDITGATE_CACHE_TTL_S
      value: {{ $s.cacheTtlS | int | quote }}
    - name: CREDITGATE_REDIS_TIMEOUT_MS
      value: {{ $s.redisTimeoutMs | int | quote }}
    - name: CREDITGATE_REDIS_DEADLINE_MS
      value: {{ $s.redisDeadlineMs | int | quote }}
    - name: CREDITGATE_IDEMPOTENCY_WINDOW_MS
      value: {{ $s.idempotencyWindowMs | int | quote }}
    - name: CREDITGATE_MAX_BODY_BYTES
      value: {{ $s.maxBodyBytes | int | quote }}
    {{- with $s.redisMaxMemoryBytes }}
    - name: CREDITGATE_REDIS_MAX_MEMORY_BYTES
      value: {{ . | int64 | quote }}
    {{- end }}
    - name: CREDITGATE_REDIS_WAIT_REPLICAS
      value: {{ $s.redisWaitReplicas | int | quote }}
    - name: CREDITGATE_REDIS_WAIT_TIMEOUT_MS
      value: {{ $s.redisWaitTimeoutMs | int | quote }}
    - name: CREDITGATE_FALLBACK_CUSTOMER_TTL_S
      value: {{ $s.fallbackCustomerTtlS | int | quote }}
    - name: CREDITGATE_SPOOL_DIR
      value: /var/lib/creditgate/spool
    - name: CREDITGATE_SPOOL_MAX_ENTRIES
      value: {{ $s.spool.maxEntries | int | quote }}
    - name: CREDITGATE_SPOOL_MAX_BYTES
      value: {{ $s.spool.maxBytes | int64 | quote }}
    {{- with $s.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: cg-metrics
      containerPort: {{ $s.ports.metrics | int }}
      protocol: TCP
    {{- if not (include "creditgate.sidecar.podLocal" .) }}
    {{- if $s.http }}
    - name: cg-http
      containerPort: {{ $s.ports.http | int }}
      protocol: TCP
    {{- end }}
    {{- if $s.grpc }}
    - name: cg-grpc
      containerPort: {{ $s.ports.grpc | int }}
      protocol: TCP
    {{- end }}
    {{- if include "creditgate.sidecar.adminOn" . }}
    {{- if $s.http }}
    - name: cg-admin
      containerPort: {{ $s.ports.admin | int }}
      protocol: TCP
    {{- end }}
    {{- if $s.grpc }}
    - name: cg-grpc-admin
      containerPort: {{ $s.ports.grpcAdmin | int }}
      protocol: TCP
    {{- end }}
    {{- end }}
    {{- end }}
  startupProbe:
    httpGet:
      path: /healthz
      port: cg-metrics
    {{- toYaml $s.probes.startup | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: cg-metrics
    {{- toYaml $s.probes.liveness | nindent 4 }}
  {{- if $s.probes.readiness.enabled }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: cg-metrics
    {{- toYaml (omit $s.probes.readiness "enabled") | nindent 4 }}
  {{- end }}
  resources:
    {{- toYaml $s.resources | nindent 4 }}
  securityContext:
    {{- toYaml $s.securityContext | nindent 4 }}
  volumeMounts:
    {{- include "creditgate.catalog.volumeMounts" . | nindent 4 }}
    - name: creditgate-spool
      mountPath: /var/lib/creditgate/spool
{{- end -}}

{{- define "creditgate.sidecar.volumes" -}}
{{- include "creditgate.catalog.volume" . }}
- name: creditgate-spool
  emptyDir:
    sizeLimit: {{ .Values.sidecar.spool.sizeLimit }}
{{- end -}}

{{/* The strategic-merge patch that adds the sidecar to a gateway Deployment. */}}
{{- define "creditgate.sidecar.patch" -}}
spec:
  template:
    spec:
      {{ ternary "initContainers" "containers" .Values.sidecar.native }}:
        {{- include "creditgate.sidecar.container" . | nindent 8 }}
      volumes:
        {{- include "creditgate.sidecar.volumes" . | nindent 8 }}
      {{- with .Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}
