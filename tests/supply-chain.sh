#!/usr/bin/env bash
# Supply-chain check of the workspace with cargo-deny and the policy in deny.toml:
# licenses, duplicate versions (warnings), sources (crates.io only) and, where the RustSec
# advisory database is reachable, security advisories.
#
#   bash tests/supply-chain.sh
#
# Environment:
#   CARGO_DENY_VERSION    cargo-deny version to install when missing (default below).
#   DCIM_ADVISORY_DB      a copy of cargo-deny's advisory database directory (`advisory-dbs`
#                         under CARGO_HOME on a machine that fetched it): the advisories check
#                         then runs offline against it (cargo-deny 0.20 reads the git checkout
#                         <DCIM_ADVISORY_DB>/advisory-db-3157b0e258782691).
#   DCIM_ADVISORIES=fetch fetch the database from GitHub and run the advisories check.
#   DCIM_REQUIRE_ADVISORIES=1  fail (instead of skipping with a message) when the advisories
#                         check cannot run.
#
# The RustSec database is published only as a git repository on GitHub; no package in the
# registries this project's machines can reach (crates.io, PyPI, npm, Debian) ships it, so by
# default the advisories check is skipped with a clear message.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DENY_VERSION="${CARGO_DENY_VERSION:-0.20.2}"

if ! cargo deny --version >/dev/null 2>&1; then
    echo "installing cargo-deny ${CARGO_DENY_VERSION} (cargo install --locked)"
    started=$SECONDS
    cargo install --locked cargo-deny --version "${CARGO_DENY_VERSION}"
    echo "cargo-deny installed in $((SECONDS - started))s"
fi
cargo deny --version

echo "==> cargo deny check licenses bans sources"
cargo deny --all-features check --show-stats licenses bans sources

if [[ -n "${DCIM_ADVISORY_DB:-}" ]]; then
    echo "==> cargo deny check advisories (offline, databases under ${DCIM_ADVISORY_DB})"
    # DCIM_ADVISORY_DB is a copy of cargo-deny's database directory from a machine that can
    # fetch it (by default $CARGO_HOME/advisory-dbs there).
    config="$(mktemp)"
    trap 'rm -f "$config"' EXIT
    sed "s|^\[advisories\]|[advisories]\ndb-path = \"$(realpath "$DCIM_ADVISORY_DB")\"|" deny.toml >"$config"
    cargo deny --offline --all-features --config "$config" check advisories
elif [[ "${DCIM_ADVISORIES:-}" == "fetch" ]]; then
    echo "==> cargo deny check advisories (fetching the RustSec database)"
    cargo deny --all-features check advisories
else
    msg="advisories: not checked: the RustSec advisory database is fetched from GitHub, which this machine cannot reach (set DCIM_ADVISORY_DB=<copy of an advisory-dbs directory> or DCIM_ADVISORIES=fetch)"
    if [[ "${DCIM_REQUIRE_ADVISORIES:-0}" == "1" ]]; then
        echo "FAIL: $msg" >&2
        exit 1
    fi
    echo "skipped: $msg"
fi
echo "supply chain: ok"
