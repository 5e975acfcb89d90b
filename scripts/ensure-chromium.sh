#!/usr/bin/env bash
# Install Debian's chromium, which the report's headless-browser test opens pages in, when it is
# not there yet. Idempotent and quiet: prints apt's log only when the installation fails.
set -euo pipefail

[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "ensure-chromium: /usr/bin/chromium is missing; installing it needs root and apt-get" >&2
    exit 1
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -q && apt-get install -y -q --no-install-recommends chromium; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "ensure-chromium: could not install chromium" >&2
    exit 1
fi
