#!/usr/bin/env bash
# Install the Debian servers the deployment tests start for themselves: PostgreSQL (the warehouse
# tests, tests/integration/test_postgres*.py) and Redis (the Celery broker, test_celery*.py).
#
# Idempotent: installs only what is missing. Non-interactive, for CI as root (or passwordless sudo).
# The packages' own services are kept from starting (policy-rc.d): the tests run throwaway servers
# on loopback ports in temp folders and stop them afterwards, nothing listens on the default ports.
set -euo pipefail

missing=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-services: postgresql and redis-server already present"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
else
    echo "install-services: missing ${missing[*]} and this is not root (no sudo): cannot apt-get install" >&2
    exit 1
fi

POLICY=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$POLICY" ]; then
    # exit 101 = "action forbidden": apt's postinst scripts then leave the services stopped.
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
    added_policy=1
fi
cleanup() { if [ "$added_policy" -eq 1 ]; then "${SUDO[@]}" rm -f "$POLICY"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
echo "install-services: installing ${missing[*]} with apt-get"
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"

compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || { echo "install-services: initdb still missing" >&2; exit 1; }
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || { echo "install-services: redis-server still missing" >&2; exit 1; }
echo "install-services: done"
