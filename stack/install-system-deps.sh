#!/usr/bin/env bash
# Installs the Debian packages the local stack and the tests need, only when they are missing.
# Java 17 and Maven come with the machine; their absence is reported, not papered over.
set -euo pipefail

need=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql)
# Prometheus and promtool: the alert rules' tests (`promtool test rules`) and the stack's optional prometheus.
[ -x /usr/bin/promtool ] && [ -x /usr/bin/prometheus ] || need+=(prometheus)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-system-deps: missing Debian packages: ${need[*]} (run as root or install them)" >&2
    exit 1
  fi
  echo "install-system-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian's prometheus package may start a server of its own (on *:9090); the stack runs a private one.
  if [ -x /etc/init.d/prometheus ]; then
    /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  fi
  # Debian's package starts a cluster of its own on 5432; the stack runs a private one instead.
  if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
      pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
    done
  fi
fi

command -v java >/dev/null 2>&1 || { echo "install-system-deps: java (OpenJDK 17) not found on PATH" >&2; exit 1; }
command -v mvn >/dev/null 2>&1 || { echo "install-system-deps: mvn (Maven) not found on PATH" >&2; exit 1; }
