#!/usr/bin/env bash
# Install Debian's Chromium + chromium-driver for the browser tests (tests/browser).
#
# Idempotent: does nothing when /usr/bin/chromium already exists. Non-interactive, for CI as root.
# Test tools must never download their own browser build (`playwright install` does not work here):
# the tests drive this system Chromium through Playwright's `executable_path`.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "install-browser: $CHROMIUM already present ($("$CHROMIUM" --version 2>/dev/null || echo 'version unknown'))"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
else
    echo "install-browser: $CHROMIUM is missing and this is not root (no sudo): cannot apt-get install" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-browser: installing chromium + chromium-driver with apt-get"
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-liberation

if [ ! -x "$CHROMIUM" ]; then
    echo "install-browser: apt-get finished but $CHROMIUM is still missing" >&2
    exit 1
fi
echo "install-browser: installed $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
