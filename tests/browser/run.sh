#!/usr/bin/env bash
# Browser tests of the dcim-server web console in headless Chromium (Debian's chromium driven by
# playwright-core from npm; no browser download; axe-core from npm, injected by the test; Debian's
# fonts-nanum for the Korean pages). Installs what is missing, builds dcim-server,
# runs the checks with a time limit, and exits non-zero on any failure. Screenshots are written
# to docs/screenshots/ (override with SCREENSHOT_DIR).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

# fonts-nanum: Korean glyphs (the Korean pages are checked and photographed).
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ] || [ ! -d /usr/share/fonts/truetype/nanum ]; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-nanum >/dev/null \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-nanum >/dev/null; }
    elif [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
        echo "browser tests: chromium is not installed (run tests/setup.sh as root)" >&2
        exit 1
    else
        echo "browser tests: fonts-nanum is not installed: Korean screenshots will show boxes" >&2
    fi
fi
command -v node >/dev/null || { echo "browser tests: node is not installed" >&2; exit 1; }
if [ ! -f "$here/node_modules/playwright-core/package.json" ] || [ ! -f "$here/node_modules/axe-core/axe.min.js" ]; then
    (cd "$here" && timeout 300 npm ci --no-audit --no-fund --loglevel=error)
fi
(cd "$repo" && timeout 900 cargo build -q -p dcim-server --bin dcim-server)
cd "$here"
timeout 450 node run.mjs
