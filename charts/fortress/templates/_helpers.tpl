{{/* Names and labels. */}}
{{- define "fortress.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "fortress.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains (include "fortress.name" .) .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "fortress.name" .) | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "fortress.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "fortress.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fortress
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: include "fortress.selector" (list . "operator") */}}
{{- define "fortress.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "fortress.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "fortress.componentLabels" -}}
{{ include "fortress.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "fortress.serviceAccountName" -}}
{{- $root := index . 0 -}}
{{- $values := index $root.Values (index . 1) -}}
{{- if $values.serviceAccount.create -}}
{{- default (printf "%s-%s" (include "fortress.fullname" $root) (index . 1)) $values.serviceAccount.name -}}
{{- else -}}
{{- default "default" $values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "fortress.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "fortress.apiTokensSecret" -}}
{{- default (printf "%s-api-tokens" (include "fortress.fullname" .)) .Values.api.tokens.existingSecret -}}
{{- end -}}

{{/* The generated RBAC rules (files/rbac.yaml), see operator/fortress/rbac.py. */}}
{{- define "fortress.rbacRules" -}}
{{- .Files.Get "files/rbac.yaml" -}}
{{- end -}}

{{/* Rules as a YAML list: include "fortress.ruleList" (dict "rules" LIST "watching" BOOL) */}}
{{- define "fortress.ruleList" -}}
{{- range .rules }}
{{- if or (not .whenWatchingNamespaces) $.watching }}
- apiGroups: {{ toJson .apiGroups }}
  resources: {{ toJson .resources }}
  verbs: {{ toJson .verbs }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Environment shared by the operator and the API. */}}
{{- define "fortress.commonEnv" -}}
- name: PYTHONUNBUFFERED
  value: "1"
{{- if .Values.database.existingSecret }}
- name: FORTRESS_DATABASE_DSN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret }}
      key: {{ .Values.database.key }}
{{- end }}
{{- end -}}

{{/* The fewest API pods: api.replicas, or the HPA's minReplicas. */}}
{{- define "fortress.apiMinReplicas" -}}
{{- if .Values.api.autoscaling.enabled -}}
{{- .Values.api.autoscaling.minReplicas -}}
{{- else -}}
{{- .Values.api.replicas -}}
{{- end -}}
{{- end -}}

{{/* A component's pod and container security and image settings (the restricted profile). */}}
{{- define "fortress.podSecurity" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "fortress.checks" -}}
{{- $scaling := .Values.api.autoscaling -}}
{{- if and $scaling.enabled (gt (int $scaling.minReplicas) (int $scaling.maxReplicas)) -}}
{{- fail "api.autoscaling.minReplicas must not exceed api.autoscaling.maxReplicas" -}}
{{- end -}}
{{- if and $scaling.enabled (not (or $scaling.targetCPUUtilizationPercentage $scaling.targetMemoryUtilizationPercentage)) -}}
{{- fail "api.autoscaling needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" -}}
{{- end -}}
{{- $tls := .Values.api.ingress.tls -}}
{{- if and $tls.clusterIssuer $tls.issuer -}}
{{- fail "api.ingress.tls: set clusterIssuer or issuer, not both" -}}
{{- end -}}
{{- if and (or $tls.clusterIssuer $tls.issuer) (not $tls.enabled) -}}
{{- fail "api.ingress.tls: a cert-manager issuer needs tls.enabled" -}}
{{- end -}}
{{- $names := list -}}
{{- range .Values.migrations.databases -}}
{{- if has .name $names -}}
{{- fail (printf "migrations.databases: the name %s appears twice" .name) -}}
{{- end -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- if eq (int .Values.operator.metricsPort) (int .Values.operator.livenessPort) -}}
{{- fail "operator.metricsPort and operator.livenessPort must differ" -}}
{{- end -}}
{{- if and .Values.api.metrics.enabled (eq (int .Values.api.metrics.port) (int .Values.api.port)) -}}
{{- fail "api.metrics.port and api.port must differ" -}}
{{- end -}}
{{- end -}}
