#!/usr/bin/env bash
# Regenerates the `replace` directives of kubernetes/go.mod (the module that builds
# kube-apiserver, kube-controller-manager and kube-scheduler).
#
# k8s.io/kubernetes replaces its staging modules (k8s.io/api, k8s.io/apiserver,
# ...) with ./staging/src/... paths, which do not exist outside its repository.
# A module that depends on k8s.io/kubernetes must replace each of them with the
# matching published version (v0.X.Y for Kubernetes v1.X.Y). The list is read
# from the go.mod of the pinned k8s.io/kubernetes release, never typed by hand.
#
# Usage: tests/controlplane/gen-replaces.sh [KUBERNETES_VERSION]
#        (default: the k8s.io/kubernetes version required in kubernetes/go.mod)
# To move to another release: gen-replaces.sh v1.X.Y, then build.sh. The etcd
# module (etcd/go.mod) should follow the go.etcd.io/etcd/server/v3 version that
# release's go.mod requires.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod_dir="$here/kubernetes"
export PATH="$PATH:/usr/local/go/bin"
export GOFLAGS="${GOFLAGS:-} -mod=mod"

cd "$mod_dir"
k8s_version="${1:-}"
if [[ -z "$k8s_version" ]]; then
  k8s_version="$(go mod edit -json | awk '
    /"Path": "k8s.io\/kubernetes"/ { found = 1; next }
    found && /"Version":/ { gsub(/[",]/, "", $2); print $2; exit }')"
fi
if [[ ! "$k8s_version" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]]; then
  echo "gen-replaces: cannot use Kubernetes version '$k8s_version'" >&2
  exit 1
fi
staging_version="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"

gomod="$(go mod download -json "k8s.io/kubernetes@$k8s_version" |
  sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
if [[ ! -f "$gomod" ]]; then
  echo "gen-replaces: go.mod of k8s.io/kubernetes@$k8s_version not found" >&2
  exit 1
fi

# Both forms: `replace a => ./staging/...` and lines inside `replace ( ... )`.
mapfile -t staged < <(awk '
  /^replace[[:space:]]*\(/ { inblock = 1; next }
  inblock && /^\)/ { inblock = 0; next }
  {
    line = $0
    sub(/^replace[[:space:]]+/, "", line)
    if ((inblock || $0 ~ /^replace[[:space:]]/) && line ~ /=>[[:space:]]*\.\/staging\//) {
      n = split(line, f, /[[:space:]]+/)
      for (i = 1; i <= n; i++) if (f[i] != "") { print f[i]; break }
    }
  }' "$gomod" | sort -u)

if [[ ${#staged[@]} -eq 0 ]]; then
  echo "gen-replaces: no ./staging replaces found in $gomod" >&2
  exit 1
fi

# Drop the replaces of k8s.io modules that are no longer staged, then add ours.
go mod edit -json | awk '
  /"Replace": \[/ { inrep = 1 }
  inrep && /"Old": \{/ { inold = 1 }
  inrep && inold && /"Path":/ { gsub(/[",]/, "", $2); print $2; inold = 0 }' |
  { grep '^k8s\.io/' || true; } | while read -r old; do go mod edit -dropreplace="$old"; done

args=(-require="k8s.io/kubernetes@$k8s_version")
for m in "${staged[@]}"; do
  args+=(-replace="$m=$m@$staging_version")
done
go mod edit "${args[@]}"
go mod tidy
echo "gen-replaces: k8s.io/kubernetes $k8s_version: ${#staged[@]} staging modules replaced with $staging_version"
