#!/usr/bin/env bash
# Install the Debian packages the demo and the tests need, only when they are missing.
set -euo pipefail

missing=()
have_pg() {
  command -v initdb >/dev/null 2>&1 && return 0
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}
have_pg || missing+=(postgresql)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
# CanaryRollout analysis tests and the demo run the real Prometheus (they skip/fall back without it).
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
id postgres >/dev/null 2>&1 || NEED_USER=1

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing Debian packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Debian starts services of its own on install; the tests and the demo start their own.
if command -v systemctl >/dev/null 2>&1 && [[ " ${missing[*]} " == *" prometheus "* ]]; then
  $SUDO systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
fi
if command -v pg_lsclusters >/dev/null 2>&1; then
  pg_lsclusters -h 2>/dev/null | while read -r version name _; do
    $SUDO pg_ctlcluster "$version" "$name" stop 2>/dev/null || true
  done
fi
