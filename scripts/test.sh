#!/usr/bin/env bash
# README command (b): set up everything the suite needs on a fresh Debian/Ubuntu machine, then run
# the lint and the whole suite. Safe to run again: it installs only what is missing.
#
#   system packages  redis-server (the live node's persisted cache) and chromium (the app's browser
#                    test), from the distribution, with sudo when not run as root
#   Python           .venv with CPU-only torch first (an unpinned torch pulls GBs of CUDA), then the
#                    project with its test extras
#   checks           ruff check, then pytest on 2 workers
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -c 'import sys; assert sys.version_info[:2] == (3, 11), f"FlashMM needs Python 3.11 as python3, got {sys.version.split()[0]}"'

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
        echo "scripts/test.sh: ${missing[*]} missing and no sudo: run as root: apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    echo "installing ${missing[*]} from the distribution's packages"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# A new .venv takes ~2.6 GB (torch 0.75 GB, NautilusTrader 0.3 GB) and the suite writes a few hundred
# MB of catalogs under the temp dir. pip's own "No space left on device" names no size, so say it first.
if [ ! -x .venv/bin/python ]; then
    free_mb=$(df -Pm . | awk 'NR == 2 {print $4}')
    if [ "$free_mb" -lt 3500 ]; then
        echo "scripts/test.sh: warning: ${free_mb} MB free on $(df -P . | awk 'NR == 2 {print $6}'); a new .venv and the suite need about 3.5 GB" >&2
    fi
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/pip install -q --disable-pip-version-check -e ".[test]"

.venv/bin/ruff check .
.venv/bin/python -m pytest -n 2 "$@"
