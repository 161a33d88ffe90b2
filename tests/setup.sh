#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine. Idempotent: each step is
# skipped when its tool is already there, so running it twice costs seconds.
set -euo pipefail

log() { printf '[setup] %s\n' "$*"; }
missing_late=()

# Rust targets for the firmware images.
for target in thumbv7em-none-eabihf thumbv7m-none-eabi; do
    if ! rustup target list --installed | grep -qx "$target"; then
        log "rustup target add $target"
        rustup target add "$target"
    fi
done
for component in clippy rustfmt; do
    if ! rustup component list --installed | grep -q "^$component"; then
        log "rustup component add $component"
        rustup component add "$component"
    fi
done

# Debian packages: QEMU for the emulated controller, mosquitto as a third-party broker, Spin.
missing=()
command -v qemu-system-arm >/dev/null || missing+=(qemu-system-arm)
# The firmware panic check reads the image's symbols and call sites with LLVM's tools.
command -v llvm-objdump >/dev/null && command -v llvm-addr2line >/dev/null || missing+=(llvm)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v mosquitto_pub >/dev/null || missing+=(mosquitto-clients)
# dcim-server tests: VictoriaMetrics as the InfluxDB v2 compatible store, openssl for test certs.
command -v victoria-metrics >/dev/null || missing+=(victoria-metrics)
command -v openssl >/dev/null || missing+=(openssl)
# The fire logic's stage-machine model is checked with Spin (it compiles its verifier with cc).
command -v spin >/dev/null || missing+=(spin)
command -v cc >/dev/null || missing+=(gcc)
# SNMP driver tests: net-snmp's agent (v3 authPriv) and its command-line tools (traps, informs,
# sets that take a simulated link down).
[ -x /usr/sbin/snmpd ] || missing+=(snmpd)
command -v snmptrap >/dev/null || missing+=(snmp)
# Multi-site: PostgreSQL (the store's second backend, started by the tests in a temporary
# directory), Patroni and etcd (the site-loss test's cluster).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v patroni >/dev/null || missing+=(patroni)
command -v etcd >/dev/null || missing+=(etcd-server)
if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian packages of the daemons are built with cargo-deb (from crates.io; about a minute to
# compile once) and checked by tests/packaging/run.sh.
if ! command -v cargo-deb >/dev/null; then
    log "cargo install cargo-deb"
    cargo install --quiet --locked cargo-deb
fi
command -v systemd-analyze >/dev/null || missing_late+=(systemd)
command -v adduser >/dev/null || missing_late+=(adduser)
if [ "${#missing_late[@]}" -gt 0 ]; then
    log "apt-get install ${missing_late[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing_late[@]}" >/dev/null
fi

# Python peers for interop tests, in a virtualenv owned by the project.
venv="${DCIM_TEST_VENV:-$HOME/.cache/dcim-test-venv}"
if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv"
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$(dirname "$0")/interop/requirements.txt"
# Web console browser tests: Debian's chromium (driven by playwright-core; never a downloaded
# browser) and the test's npm dependencies (playwright-core, and axe-core, which the test
# injects into the pages; the console itself ships neither).
# fonts-nanum: Korean glyphs for the console's Korean pages and their screenshots.
if ! [ -x /usr/bin/chromium ] || ! command -v chromedriver >/dev/null || ! [ -d /usr/share/fonts/truetype/nanum ]; then
    log "apt-get install chromium chromium-driver fonts-nanum"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-nanum >/dev/null
fi
if command -v npm >/dev/null && { [ ! -f "$(dirname "$0")/browser/node_modules/playwright-core/package.json" ] \
    || [ ! -f "$(dirname "$0")/browser/node_modules/axe-core/axe.min.js" ]; }; then
    log "npm ci in tests/browser"
    (cd "$(dirname "$0")/browser" && npm ci --no-audit --no-fund --loglevel=error)
fi
log "done"
