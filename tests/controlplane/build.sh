#!/usr/bin/env bash
# Builds the integration-test control plane into <repo>/bin:
#   bin/kube-apiserver  from tests/controlplane/kube-apiserver (k8s.io/kubernetes)
#   bin/etcd            from tests/controlplane/etcd (go.etcd.io/etcd/server/v3)
#
# Needs only Go (>= the `go` line of both go.mod files) and the Go module proxy.
# A binary is rebuilt only when it is missing or when the hash of its module's
# go.mod, go.sum and main.go, the Go version and the build flags changed.
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

# Versions stamped into kube-apiserver (what /version reports). They follow the
# k8s.io/kubernetes requirement of kube-apiserver/go.mod.
k8s_version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }
                    $1 == "require" && $2 == "k8s.io/kubernetes" { print $3; exit }' \
               "$here/kube-apiserver/go.mod")"
if [[ ! "$k8s_version" =~ ^v([0-9]+)\.([0-9]+)\.([0-9]+)$ ]]; then
  echo "build.sh: cannot read the k8s.io/kubernetes version from kube-apiserver/go.mod" >&2
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

stamp_of() { # module dir, ldflags -> hash of everything the build depends on
  local dir="$1" ldflags="$2"
  {
    echo "$go_version $go_platform cgo=$CGO_ENABLED goflags=$GOFLAGS -trimpath -ldflags=-s -w $ldflags"
    cat "$dir/go.mod" "$dir/go.sum" "$dir/main.go"
  } | sha256sum | cut -d' ' -f1
}

build() { # name module-dir ldflags
  local name="$1" dir="$2" ldflags="$3"
  local out="$bin_dir/$name" stamp_file="$bin_dir/.$name.stamp" want have=""
  want="$(stamp_of "$dir" "$ldflags")"
  [[ -f "$stamp_file" ]] && have="$(cat "$stamp_file")"
  if [[ "${FORCE:-0}" != 1 && -x "$out" && "$have" == "$want" ]]; then
    echo "build.sh: $name is up to date"
    return 0
  fi
  local t0
  t0="$(now)"
  echo "build.sh: building $name ($go_version, -p $jobs) ..."
  rm -f "$stamp_file"
  (cd "$dir" && "$GO" build -p "$jobs" -trimpath -ldflags="-s -w $ldflags" -o "$out.tmp" .)
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

build etcd "$here/etcd" ""
build kube-apiserver "$here/kube-apiserver" "$k8s_ldflags"

echo "build.sh: control plane ready in $bin_dir (took $(since "$start"))"
