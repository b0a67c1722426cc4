#!/usr/bin/env bash
# Copies kwok's default stage set (what its kustomize/stage/fast kustomization
# lists: node initialize, node heartbeat with lease, pod ready/complete/delete)
# from the sigs.k8s.io/kwok release required in go.mod into stages/, each file
# with a header naming its source. Fortress's own stages (stages/fortress-*.yaml)
# are not touched. Run it after moving go.mod to another kwok release.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PATH="$PATH:/usr/local/go/bin"
cd "$here"
version="$(go mod edit -json | awk '
  /"Path": "sigs.k8s.io\/kwok"/ { found = 1; next }
  found && /"Version":/ { gsub(/[",]/, "", $2); print $2; exit }')"
dir="$(GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kwok@$version" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
src="$dir/kustomize/stage"
[[ -d "$src" ]] || { echo "vendor-stages: $src not found" >&2; exit 1; }

vendor() { # out source-description files...
  local out="$1" what="$2" first=1 f
  shift 2
  {
    echo "# Vendored verbatim from sigs.k8s.io/kwok $version, $what"
    echo "# (Apache License 2.0, Copyright The Kubernetes Authors). Do not edit: regenerate it"
    echo "# with tests/controlplane/kwok/vendor-stages.sh."
    for f in "$@"; do
      [[ $first == 1 ]] || echo "---"
      first=0
      cat "$src/$f"
    done
  } > "stages/$out"
}

mkdir -p stages
vendor node-fast.yaml "kustomize/stage/node/fast/node-initialize.yaml" node/fast/node-initialize.yaml
vendor node-heartbeat-with-lease.yaml \
  "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
  node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
vendor pod-fast.yaml "kustomize/stage/pod/fast/{pod-ready,pod-complete,pod-delete}.yaml" \
  pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml
echo "vendor-stages: stages of sigs.k8s.io/kwok $version copied into $here/stages"
