#!/usr/bin/env bash
# Make sure the system packages the test suite needs are installed; quiet when they already are.
# Today that is Debian's PostgreSQL server (the tests start a throwaway cluster from its binaries) and
# Debian's Chromium (the web panel's end-to-end tests drive /usr/bin/chromium with Playwright), and
# Node.js with npm (make lint installs Biome, the panel's JavaScript and CSS linter, with npm ci), and for
# `make bench` Debian's nginx (a static upstream in front of which the gateway is measured) and wrk (the load
# generator).
set -euo pipefail

packages=()

shopt -s nullglob
initdb=(/usr/lib/postgresql/*/bin/initdb)
shopt -u nullglob
if ((${#initdb[@]} == 0)); then
    echo "PostgreSQL server binaries not found under /usr/lib/postgresql." >&2
    packages+=(postgresql)
fi

if [[ ! -x /usr/bin/chromium ]]; then
    echo "Chromium not found at /usr/bin/chromium." >&2
    packages+=(chromium)
fi

if ! command -v wrk >/dev/null 2>&1; then
    echo "wrk not found." >&2
    packages+=(wrk)
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "npm not found." >&2
    packages+=(nodejs npm)
fi

if [[ ! -x /usr/sbin/nginx ]]; then
    echo "nginx not found at /usr/sbin/nginx." >&2
    packages+=(nginx)
fi

if ! command -v wrk >/dev/null 2>&1; then
    echo "wrk not found." >&2
    packages+=(wrk)
fi

if ((${#packages[@]} == 0)); then
    exit 0
fi
echo "Installing: ${packages[*]}" >&2

if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "Not root and sudo is not available. Install these packages and re-run:" >&2
    echo "    apt-get install -y --no-install-recommends ${packages[*]}" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "apt-get not found. Install with your package manager: the PostgreSQL server (initdb, pg_ctl)" >&2
    echo "or set LLMCONFIG_TEST_POSTGRES_URL to an existing server; Chromium at /usr/bin/chromium." >&2
    exit 1
fi

"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
