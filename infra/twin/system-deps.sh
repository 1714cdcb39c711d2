#!/usr/bin/env bash
# Debian packages the tests need (tests/e2e):
#   chromium  headless browser for the web mailbox test (test_mailbox.py)
#   notmuch   a real mail client's threader for the threading test (test_threading.py)
# Quiet and idempotent: does nothing when both are on PATH. Locally the tests that
# need a missing one skip; CI (CI=true) must have both, so this fails there.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v notmuch >/dev/null 2>&1 || missing+=(notmuch)
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "system-deps: ${missing[*]} missing and we are not root (no sudo); install with: apt-get install -y ${missing[*]}" >&2
        # Locally the tests that need them then skip; CI must have them.
        if [ "${CI:-}" = "true" ]; then exit 1; fi
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# apt's output only when it fails (debconf chatter otherwise).
quiet() { "$@" >"$log" 2>&1 || { cat "$log" >&2; return 1; }; }
echo "system-deps: installing ${missing[*]} (headless browser / mail threader for the e2e tests)..."
quiet $SUDO apt-get update -qq
for pkg in "${missing[@]}"; do
    case "$pkg" in
        # notmuch's recommends (the Emacs front end) are not needed for its CLI.
        notmuch) quiet $SUDO apt-get install -y -qq --no-install-recommends notmuch ;;
        *) quiet $SUDO apt-get install -y -qq "$pkg" ;;
    esac
    command -v "$pkg" >/dev/null 2>&1 || { echo "system-deps: $pkg still not on PATH after install" >&2; exit 1; }
done
for pkg in "${missing[@]}"; do
    case "$pkg" in
        chromium) echo "system-deps: $(chromium --version 2>/dev/null || echo chromium installed)" ;;
        notmuch) echo "system-deps: $(notmuch --version 2>/dev/null || echo notmuch installed)" ;;
    esac
done
