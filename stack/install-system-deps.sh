#!/usr/bin/env bash
# Installs the Debian packages the local stack needs, only when they are missing.
# Java 17 and Maven come with the machine; their absence is reported, not papered over.
set -euo pipefail

need=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-system-deps: missing Debian packages: ${need[*]} (run as root or install them)" >&2
    exit 1
  fi
  echo "install-system-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian's package starts a cluster of its own on 5432; the stack runs a private one instead.
  if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
      pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
    done
  fi
fi

command -v java >/dev/null 2>&1 || { echo "install-system-deps: java (OpenJDK 17) not found on PATH" >&2; exit 1; }
command -v mvn >/dev/null 2>&1 || { echo "install-system-deps: mvn (Maven) not found on PATH" >&2; exit 1; }
