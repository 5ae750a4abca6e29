{{/*
Helpers of the tongxing chart. Every name is prefixed with "tongxing.".
*/}}

{{- define "tongxing.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<chart>, or <release> when it already holds the chart name; at most 50
characters so that "-gateway" and "-operator" still fit in 63. */}}
{{- define "tongxing.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tongxing.gateway.fullname" -}}
{{- printf "%s-gateway" (include "tongxing.fullname" .) -}}
{{- end -}}

{{- define "tongxing.operator.fullname" -}}
{{- printf "%s-operator" (include "tongxing.fullname" .) -}}
{{- end -}}

{{- define "tongxing.operator.serviceAccountName" -}}
{{- default (include "tongxing.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- end -}}

{{- define "tongxing.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of a resource; the argument is (list $ "gateway"|"operator"|""). */}}
{{- define "tongxing.labels" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
helm.sh/chart: {{ include "tongxing.chart" $root }}
{{ include "tongxing.selectorLabels" (list $root $component) }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: tongxing
{{- with $root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "tongxing.selectorLabels" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
app.kubernetes.io/name: {{ include "tongxing.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
{{- if $component }}
app.kubernetes.io/component: {{ $component }}
{{- end }}
{{- end -}}

{{- define "tongxing.image" -}}
{{- $image := .Values.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The gateway's public issuer: gateway.issuer, or https://<ingress host>. */}}
{{- define "tongxing.gateway.issuer" -}}
{{- $gateway := .Values.gateway -}}
{{- if $gateway.issuer -}}
{{- $gateway.issuer | trimSuffix "/" -}}
{{- else if and $gateway.ingress.enabled $gateway.ingress.host -}}
{{- printf "https://%s" $gateway.ingress.host -}}
{{- else -}}
{{- fail "gateway.issuer: set the gateway's public https issuer URL (e.g. https://id.example.gov.cn), or turn on gateway.ingress with a host" -}}
{{- end -}}
{{- end -}}

{{- define "tongxing.gateway.proxyHops" -}}
{{- $hops := .Values.gateway.proxyHops -}}
{{- if kindIs "invalid" $hops -}}
{{- ternary 1 0 .Values.gateway.ingress.enabled -}}
{{- else -}}
{{- $hops -}}
{{- end -}}
{{- end -}}

{{/* The most gateway pods there can be: the HPA's maximum, or gateway.replicas. */}}
{{- define "tongxing.gateway.maxReplicas" -}}
{{- $gateway := .Values.gateway -}}
{{- if $gateway.autoscaling.enabled -}}
{{- $gateway.autoscaling.maxReplicas -}}
{{- else -}}
{{- $gateway.replicas -}}
{{- end -}}
{{- end -}}

{{/* Whether the gateway's store is PostgreSQL (a URL Secret is named) or SQLite in the pod. */}}
{{- define "tongxing.gateway.usesPostgres" -}}
{{- if .Values.gateway.database.existingSecret -}}true{{- end -}}
{{- end -}}

{{- define "tongxing.gateway.secretName" -}}
{{- required "gateway.secrets.existingSecret: name the Secret that holds the gateway's national-secret, pairwise-secret, admin-token, operator-token, session-secret and mfa-secret (create it first: see the chart's README); the chart never makes up secrets" .Values.gateway.secrets.existingSecret -}}
{{- end -}}

{{/* The port the gateway container listens on (its Service's target, the operator's egress). */}}
{{- define "tongxing.gateway.containerPort" -}}8080{{- end -}}

{{/* TONGXING_ADMIN_CLIENTS: gateway.adminClients in the gateway's spelling (a JSON list). */}}
{{- define "tongxing.gateway.adminClients" -}}
{{- $clients := list -}}
{{- range .Values.gateway.adminClients -}}
{{- $clients = append $clients (dict "name" .name "role" .role "token_sha256" (lower .tokenSha256)) -}}
{{- end -}}
{{- toJson $clients -}}
{{- end -}}

{{/* TONGXING_OPERATOR_KEYCLOAKS: operator.keycloaks with their defaults, in the operator's
spelling (a JSON list). */}}
{{- define "tongxing.operator.keycloaks" -}}
{{- $grants := list -}}
{{- range .Values.operator.keycloaks -}}
{{- $secret := dict "namespace" (get .credentialsSecret "namespace" | default $.Release.Namespace) "name" .credentialsSecret.name -}}
{{- $grant := dict "url" .url "public_url" (get . "publicUrl" | default nil) "admin_realm" (get . "adminRealm" | default "master") "credentials_secret" $secret "namespaces" (get . "namespaces" | default (list "*")) -}}
{{- $grants = append $grants $grant -}}
{{- end -}}
{{- toJson $grants -}}
{{- end -}}

{{/* The Keycloak credential Secrets the operator may read: namespace -> sorted names (JSON). */}}
{{- define "tongxing.operator.credentialSecrets" -}}
{{- $byNamespace := dict -}}
{{- range .Values.operator.keycloaks -}}
{{- $namespace := get .credentialsSecret "namespace" | default $.Release.Namespace -}}
{{- $names := default (list) (get $byNamespace $namespace) -}}
{{- $_ := set $byNamespace $namespace (append $names .credentialsSecret.name | uniq | sortAlpha) -}}
{{- end -}}
{{- toJson $byNamespace -}}
{{- end -}}

{{- define "tongxing.gateway.proofingSecret" -}}
{{- required "gateway.proofing.existingSecret: name the Secret that holds the proofing providers' client secrets (each provider's client_secret_key is a key of it), e.g. kubectl create secret generic tongxing-proofing --from-literal=mps=..." .Values.gateway.proofing.existingSecret -}}
{{- end -}}

{{- define "tongxing.gateway.signingKeysSecret" -}}
{{- required "gateway.signingKeys.existingSecret: name the Secret that holds the signing key ring (tongxing keys generate --file keys.json; kubectl create secret generic tongxing-signing-keys --from-file=keys.json)" .Values.gateway.signingKeys.existingSecret -}}
{{- end -}}

{{/*
Refuse what cannot work, with a message that says what to set. Included by both Deployments,
so `helm template` and `helm install` fail before anything is applied.
*/}}
{{- define "tongxing.validate" -}}
{{- $gateway := .Values.gateway -}}
{{- $replicas := int (include "tongxing.gateway.maxReplicas" .) -}}
{{- if and (gt $replicas 1) (not (include "tongxing.gateway.usesPostgres" .)) -}}
{{- fail (printf "gateway: %d replicas cannot share SQLite (each pod would keep its own store, so sign-ins, codes and tokens would not be found from one replica to the next): set gateway.database.existingSecret to a Secret with a PostgreSQL URL (postgresql+psycopg://...), or run gateway.replicas=1 without autoscaling" $replicas) -}}
{{- end -}}
{{- if and (include "tongxing.gateway.usesPostgres" .) $gateway.database.sqlite.existingClaim -}}
{{- fail "gateway.database: sqlite.existingClaim is for the SQLite store; with existingSecret (PostgreSQL) leave it empty" -}}
{{- end -}}
{{- if and $gateway.autoscaling.enabled (gt (int $gateway.autoscaling.minReplicas) (int $gateway.autoscaling.maxReplicas)) -}}
{{- fail "gateway.autoscaling: minReplicas is greater than maxReplicas" -}}
{{- end -}}
{{- if $gateway.ingress.enabled -}}
{{- if not $gateway.ingress.host -}}
{{- fail "gateway.ingress.host: the Ingress needs the public host name" -}}
{{- end -}}
{{- if not $gateway.ingress.tls.secretName -}}
{{- fail "gateway.ingress.tls.secretName: the Ingress serves the issuer over https; name its TLS Secret (cert-manager can create it)" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.operator.enabled .Values.operator.watch.allNamespaces .Values.operator.watch.namespaces -}}
{{- fail "operator.watch: allNamespaces and a namespaces list exclude each other" -}}
{{- end -}}
{{- $names := list -}}
{{- $digests := list -}}
{{- range $gateway.adminClients -}}
{{- if has .name $names -}}
{{- fail (printf "gateway.adminClients: the name %q appears twice; each admin client's name is its own" .name) -}}
{{- end -}}
{{- if has (lower .tokenSha256) $digests -}}
{{- fail (printf "gateway.adminClients: %s has the tokenSha256 of another client; give each client a token of its own" .name) -}}
{{- end -}}
{{- $names = append $names .name -}}
{{- $digests = append $digests (lower .tokenSha256) -}}
{{- end -}}
{{- if .Values.operator.enabled -}}
{{- include "tongxing.operator.validateKeycloaks" . -}}
{{- end -}}
{{- include "tongxing.gateway.validateFederationAndProofing" . -}}
{{- $_ := include "tongxing.gateway.issuer" . -}}
{{- $_ := include "tongxing.gateway.secretName" . -}}
{{- $_ := include "tongxing.gateway.signingKeysSecret" . -}}
{{- include "tongxing.checkSecrets" . -}}
{{- end -}}

{{/*
With a cluster to ask (install, upgrade, --dry-run=server): every named Secret exists and has
its keys, and the database URL is PostgreSQL's. lookup answers nothing during `helm template`;
the release namespace answering tells that helm is talking to a cluster.
*/}}
{{- define "tongxing.checkSecrets" -}}
{{- if and .Values.checkSecrets (lookup "v1" "Namespace" "" .Release.Namespace) -}}
{{- $gateway := .Values.gateway -}}
{{- $keys := $gateway.secrets.keys -}}
{{- $required := list $keys.nationalSecret $keys.pairwiseSecret $keys.adminToken $keys.sessionSecret $keys.mfaSecret -}}
{{- if .Values.operator.enabled -}}
{{- $required = append $required $keys.operatorToken -}}
{{- end -}}
{{- include "tongxing.checkSecret" (list . "gateway.secrets.existingSecret" $gateway.secrets.existingSecret $required) -}}
{{- include "tongxing.checkSecret" (list . "gateway.signingKeys.existingSecret" $gateway.signingKeys.existingSecret (list $gateway.signingKeys.key)) -}}
{{- with $gateway.federation.existingSecret -}}
{{- include "tongxing.checkSecret" (list $ "gateway.federation.existingSecret" . (list $gateway.federation.key)) -}}
{{- end -}}
{{- with $gateway.proofing.providers -}}
{{- $keys := list -}}
{{- range . -}}
{{- $keys = append $keys .client_secret_key -}}
{{- end -}}
{{- include "tongxing.checkSecret" (list $ "gateway.proofing.existingSecret" $gateway.proofing.existingSecret $keys) -}}
{{- end -}}
{{- if $gateway.database.existingSecret -}}
{{- include "tongxing.checkSecret" (list . "gateway.database.existingSecret" $gateway.database.existingSecret (list $gateway.database.key)) -}}
{{- $found := lookup "v1" "Secret" .Release.Namespace $gateway.database.existingSecret -}}
{{- $url := index $found.data $gateway.database.key | b64dec -}}
{{- if not (regexMatch "^postgres(ql)?(\\+[a-z0-9]+)?://" $url) -}}
{{- fail (printf "gateway.database.existingSecret: key %q of Secret %s/%s is not a PostgreSQL URL (postgresql+psycopg://user:password@host/db)" $gateway.database.key .Release.Namespace $gateway.database.existingSecret) -}}
{{- end -}}
{{- end -}}
{{- if .Values.operator.enabled -}}
{{- range $index, $grant := .Values.operator.keycloaks -}}
{{- $namespace := get $grant.credentialsSecret "namespace" | default $.Release.Namespace -}}
{{- include "tongxing.checkSecret" (list $ (printf "operator.keycloaks[%d].credentialsSecret" $index) $grant.credentialsSecret.name (list "username" "password") $namespace) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* (list $ "the value's path" "secret name" (list "key" ...) ["namespace"]): the namespace
defaults to the release's. */}}
{{- define "tongxing.checkSecret" -}}
{{- $root := index . 0 -}}
{{- $what := index . 1 -}}
{{- $name := index . 2 -}}
{{- $keys := index . 3 -}}
{{- $namespace := $root.Release.Namespace -}}
{{- if gt (len .) 4 -}}
{{- $namespace = index . 4 -}}
{{- end -}}
{{- $secret := lookup "v1" "Secret" $namespace $name -}}
{{- if not $secret -}}
{{- fail (printf "%s: Secret %s/%s does not exist; create it before installing (see the chart's README), or set checkSecrets=false" $what $namespace $name) -}}
{{- end -}}
{{- range $keys -}}
{{- if not (hasKey (default dict $secret.data) .) -}}
{{- fail (printf "%s: Secret %s/%s has no key %q" $what $namespace $name .) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The Keycloak grants make sense together: one grant per URL (the operator matches a Region's
keycloak.url against them), and every namespace a grant names is one the operator watches (a
grant elsewhere would never apply: most likely a typo).
*/}}
{{- define "tongxing.operator.validateKeycloaks" -}}
{{- $urls := list -}}
{{- $watched := include "tongxing.operator.namespaces" . | fromJsonArray -}}
{{- range $index, $grant := .Values.operator.keycloaks -}}
{{- /* As the operator compares: scheme and host in lower case, a trailing slash aside. */ -}}
{{- $url := $grant.url | trimSuffix "/" -}}
{{- $origin := regexFind "^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]+" $url -}}
{{- $url = printf "%s%s" (lower $origin) (trimPrefix $origin $url) -}}
{{- if has $url $urls -}}
{{- fail (printf "operator.keycloaks[%d].url: %s is granted twice; grant each Keycloak once, with every namespace that may use it in its namespaces" $index $grant.url) -}}
{{- end -}}
{{- $urls = append $urls $url -}}
{{- if not $.Values.operator.watch.allNamespaces -}}
{{- range get $grant "namespaces" | default (list "*") -}}
{{- if and (ne . "*") (not (has . $watched)) -}}
{{- fail (printf "operator.keycloaks[%d].namespaces: %s is not a namespace the operator watches (%s); add it to operator.watch.namespaces or remove it" $index . (join ", " $watched)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The namespaces the operator watches (namespaced mode): the list, or the release's. */}}
{{- define "tongxing.operator.namespaces" -}}
{{- $namespaces := .Values.operator.watch.namespaces | default (list .Release.Namespace) -}}
{{- toJson (uniq $namespaces) -}}
{{- end -}}

{{- define "tongxing.operator.gatewayUrl" -}}
{{- if .Values.operator.gatewayUrl -}}
{{- .Values.operator.gatewayUrl | trimSuffix "/" -}}
{{- else -}}
{{- printf "http://%s.%s.svc:%d" (include "tongxing.gateway.fullname" .) .Release.Namespace (int .Values.gateway.service.port) -}}
{{- end -}}
{{- end -}}

{{/* What the operator may do in a namespace it watches (Role) or everywhere (ClusterRole). */}}
{{- define "tongxing.operator.namespacedRules" -}}
# The custom resources, their status, and kopf's finalizer and progress annotations.
- apiGroups: [tongxing.io]
  resources: [regions, portals]
  verbs: [get, list, watch, patch, update]
- apiGroups: [tongxing.io]
  resources: [regions/status, portals/status]
  verbs: [get, patch, update]
# Peering between replicas (the chart creates the KopfPeering; the operator only keeps it alive).
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch]
# The Portals' credential Secrets (spec.secretName: written, owned by the Portal). No list or
# watch: the operator cannot enumerate Secrets. Keycloak admin credentials are not read here:
# only from the Secrets the platform grants (operator.keycloaks), by a Role of their own.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create, patch, delete]
# Events on Regions and Portals.
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create]
{{- end -}}

{{/*
The operator's egress rule to the API server: operator.networkPolicy.egress.apiServer, or, when
that is empty and helm talks to a cluster, the addresses of the `kubernetes` Endpoints in
`default` (a NetworkPolicy sees the endpoint once the Service's address is translated), with
apiServerPorts and the Endpoints' ports. Without a cluster to ask (helm template, lint,
--dry-run=client) there is nothing to fill them with: fail, naming the value to set.
*/}}
{{- define "tongxing.operator.apiServerEgress" -}}
{{- $egress := .Values.operator.networkPolicy.egress -}}
{{- $peers := $egress.apiServer -}}
{{- $ports := list -}}
{{- range $egress.apiServerPorts -}}
{{- $ports = append $ports (int .) -}}
{{- end -}}
{{- if not $peers -}}
{{- $endpoints := lookup "v1" "Endpoints" "default" "kubernetes" -}}
{{- range $subset := get $endpoints "subsets" | default (list) -}}
{{- range get $subset "addresses" | default (list) -}}
{{- $peers = append $peers (dict "ipBlock" (dict "cidr" (printf "%s/%s" .ip (ternary "128" "32" (contains ":" .ip))))) -}}
{{- end -}}
{{- range get $subset "ports" | default (list) -}}
{{- $ports = append $ports (int .port) -}}
{{- end -}}
{{- end -}}
{{- if not $peers -}}
{{- /* Whatever else is wrong is said first, whichever template helm happens to render first. */ -}}
{{- include "tongxing.validate" . -}}
{{- if lookup "v1" "Namespace" "" "default" -}}
{{- fail "operator.networkPolicy.egress.apiServer: the Endpoints default/kubernetes has no addresses this installer may read; set the API server's addresses, e.g. [{ipBlock: {cidr: 10.0.0.1/32}}] (kubectl get endpoints kubernetes -n default), or turn the operator's egress policy off (operator.networkPolicy.egress.enabled=false)" -}}
{{- else -}}
{{- fail "operator.networkPolicy.egress.apiServer: without a cluster to ask (helm template, helm lint, --dry-run=client) the API server's addresses cannot be looked up; set them, e.g. --set-json 'operator.networkPolicy.egress.apiServer=[{\"ipBlock\":{\"cidr\":\"10.0.0.1/32\"}}]' (kubectl get endpoints kubernetes -n default), or turn the operator's egress policy off (operator.networkPolicy.egress.enabled=false)" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $rulePorts := list -}}
{{- range uniq $ports -}}
{{- $rulePorts = append $rulePorts (dict "port" . "protocol" "TCP") -}}
{{- end -}}
{{- toYaml (list (dict "to" $peers "ports" $rulePorts)) -}}
{{- end -}}

{{/*
The federation's values need its key ring (without it the gateway starts with the federation
off, and automatic or explicit registration would stop its start); each proofing provider id
once, and the proofing Secret named when there are providers.
*/}}
{{- define "tongxing.gateway.validateFederationAndProofing" -}}
{{- $federation := .Values.gateway.federation -}}
{{- if not $federation.existingSecret -}}
{{- range $name := list "automaticRegistration" "explicitRegistration" "metadataPolicy" "metadataPolicyCrit" "trustMarkTypes" "organizationName" "statementLifetime" -}}
{{- if index $federation $name -}}
{{- fail (printf "gateway.federation.%s: the federation is off without its key ring; set gateway.federation.existingSecret to the Secret holding it (tongxing keys generate --file federation-keys.json; kubectl create secret generic tongxing-federation-keys --from-file=federation-keys.json)" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $ids := list -}}
{{- range .Values.gateway.proofing.providers -}}
{{- if has .id $ids -}}
{{- fail (printf "gateway.proofing.providers: the id %q appears twice; each provider's id is its own" .id) -}}
{{- end -}}
{{- $ids = append $ids .id -}}
{{- end -}}
{{- if .Values.gateway.proofing.providers -}}
{{- $_ := include "tongxing.gateway.proofingSecret" . -}}
{{- end -}}
{{- end -}}
