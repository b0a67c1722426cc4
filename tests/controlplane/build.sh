#!/usr/bin/env bash
# Builds the local control plane into <repo>/bin:
#   bin/etcd                     from tests/controlplane/etcd (go.etcd.io/etcd/server/v3)
#   bin/kube-apiserver           from tests/controlplane/kubernetes/cmd/kube-apiserver
#   bin/kube-controller-manager  from tests/controlplane/kubernetes/cmd/kube-controller-manager
#   bin/kube-scheduler           from tests/controlplane/kubernetes/cmd/kube-scheduler
#                                (the three from one module requiring k8s.io/kubernetes,
#                                built one after another so they share the build cache)
#   bin/kwok                     from tests/controlplane/kwok (sigs.k8s.io/kwok)
#
# Needs only Go (>= the `go` line of the go.mod files) and the Go module proxy.
# A binary is rebuilt only when it is missing or when the hash of its module's
# go.mod and go.sum, its main.go, the Go version and the build flags changed.
#
# Usage: build.sh [NAME...]   (default: all of the above; e.g. build.sh kwok)
#
# Environment:
#   GO            go command to use (default: `go` on PATH, else /usr/local/go/bin/go)
#   BUILD_JOBS    parallel compile jobs, go build -p (default: number of CPUs, max 4)
#   FORCE=1       rebuild even when up to date
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin_dir="$repo/bin"

GO="${GO:-}"
if [[ -z "$GO" ]]; then
  if command -v go >/dev/null 2>&1; then GO="$(command -v go)"; else GO=/usr/local/go/bin/go; fi
fi

# Versions stamped into the Kubernetes binaries (what /version reports). They follow
# the k8s.io/kubernetes requirement of kubernetes/go.mod.
k8s_version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }
                    $1 == "require" && $2 == "k8s.io/kubernetes" { print $3; exit }' \
               "$here/kubernetes/go.mod")"
if [[ ! "$k8s_version" =~ ^v([0-9]+)\.([0-9]+)\.([0-9]+)$ ]]; then
  echo "build.sh: cannot read the k8s.io/kubernetes version from kubernetes/go.mod" >&2
  exit 1
fi
k8s_major="${BASH_REMATCH[1]}"
k8s_minor="${BASH_REMATCH[2]}"

cpus="$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)"
jobs="${BUILD_JOBS:-$(( cpus > 4 ? 4 : cpus ))}"

# -mod=readonly: go.mod/go.sum are complete and checked in; never rewrite them
# (unless the caller's GOFLAGS already chose a -mod mode).
GOFLAGS="${GOFLAGS:-}"
[[ "$GOFLAGS" == *-mod=* ]] || GOFLAGS+=" -mod=readonly"
[[ "$GOFLAGS" == *-buildvcs=* ]] || GOFLAGS+=" -buildvcs=false"
export GOFLAGS
export CGO_ENABLED="${CGO_ENABLED:-0}"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

start="$(now)"
go_version="$("$GO" env GOVERSION)"
go_platform="$("$GO" env GOOS GOARCH | tr '\n' ' ')"
mkdir -p "$bin_dir"

stamp_of() { # module dir, main package dir, ldflags -> hash of everything the build depends on
  local dir="$1" pkg="$2" ldflags="$3"
  {
    echo "$go_version $go_platform cgo=$CGO_ENABLED goflags=$GOFLAGS -trimpath -ldflags=-s -w $ldflags"
    cat "$dir/go.mod" "$dir/go.sum" "$dir/$pkg/main.go"
  } | sha256sum | cut -d' ' -f1
}

build() { # name module-dir main-package-dir (relative to the module) ldflags
  local name="$1" dir="$2" pkg="$3" ldflags="$4"
  local out="$bin_dir/$name" stamp_file="$bin_dir/.$name.stamp" want have=""
  want="$(stamp_of "$dir" "$pkg" "$ldflags")"
  [[ -f "$stamp_file" ]] && have="$(cat "$stamp_file")"
  if [[ "${FORCE:-0}" != 1 && -x "$out" && "$have" == "$want" ]]; then
    echo "build.sh: $name is up to date"
    return 0
  fi
  local t0
  t0="$(now)"
  echo "build.sh: building $name ($go_version, -p $jobs) ..."
  rm -f "$stamp_file"
  (cd "$dir" && "$GO" build -p "$jobs" -trimpath -ldflags="-s -w $ldflags" -o "$out.tmp" "./$pkg")
  mv -f "$out.tmp" "$out"
  echo "$want" > "$stamp_file"
  echo "build.sh: built $name in $(since "$t0") ($(du -h "$out" | cut -f1))"
}

k8s_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version"
  k8s_ldflags+=" -X $pkg.gitMajor=$k8s_major -X $pkg.gitMinor=$k8s_minor"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean"
  k8s_ldflags+=" -X $pkg.gitCommit=" # unknown: built from the module, not a git checkout
done

all=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
wanted=("$@")
[[ ${#wanted[@]} -gt 0 ]] || wanted=("${all[@]}")
for name in "${wanted[@]}"; do
  case "$name" in
    etcd) build etcd "$here/etcd" . "" ;;
    kube-apiserver | kube-controller-manager | kube-scheduler)
      build "$name" "$here/kubernetes" "cmd/$name" "$k8s_ldflags" ;;
    kwok) build kwok "$here/kwok" . "" ;;
    *) echo "build.sh: unknown binary '$name' (one of: ${all[*]})" >&2; exit 2 ;;
  esac
done

echo "build.sh: control plane ready in $bin_dir (took $(since "$start"))"
