#!/usr/bin/env bash
# Debian packages the tests need: headless Chromium for the web mailbox test
# (tests/e2e). Quiet and idempotent: does nothing when chromium is on PATH.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "system-deps: chromium is missing and we are not root (no sudo); install it with: apt-get install -y chromium" >&2
        # Locally the mailbox browser test then skips; CI must have it.
        if [ "${CI:-}" = "true" ]; then exit 1; fi
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "system-deps: installing chromium (headless browser for the mailbox test)..."
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null 2>&1 || { echo "system-deps: chromium still not on PATH after install" >&2; exit 1; }
echo "system-deps: $(chromium --version 2>/dev/null || echo chromium installed)"
