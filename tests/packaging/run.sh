#!/usr/bin/env bash
# Packages: builds the dcim-server and dcim-edge-agent .deb files, installs them on this
# machine, checks what they installed (user, directories and their modes, configuration,
# units), verifies the units with systemd-analyze, runs the installed binaries with the
# installed configuration as their service users (under systemd when this machine runs it;
# otherwise directly, in a private network namespace, with a notify socket standing in for
# systemd: READY=1 and WATCHDOG=1 must arrive and /health must answer), then purges them and
# checks nothing is left but the system users.
#
# CI packages the dev-profile binaries that `cargo test --workspace` already built
# (`--profile dev`, stripped by cargo-deb), so this step costs seconds, not a release build:
# `cargo test --workspace --no-run` finds everything fresh and puts those binaries back in
# target/debug/. (`cargo build -p dcim-server` would not: without the workspace's
# dev-dependencies its features differ, e.g. rustix's, and it recompiles the server.) Run on its
# own, the same command builds the tests once. Releases use `cargo deb -p dcim-server` (the
# release profile).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
step() { printf '[packaging %3ds] %s\n' "$((SECONDS - started))" "$*"; }
fail() { printf '[packaging] FAIL: %s\n' "$*" >&2; exit 1; }
started=$SECONDS
[ "$(id -u)" = 0 ] || { echo "[packaging] skipped: needs root (dpkg -i)"; exit 0; }
command -v cargo-deb >/dev/null || fail "cargo-deb missing (tests/setup.sh installs it)"
python="${DCIM_PYTHON:-python3}"

purge() { dpkg --purge dcim-server dcim-edge-agent >/dev/null 2>&1 || true; }
purge
trap purge EXIT

step "build (dev profile: what cargo test built) and package"
built=$SECONDS
cargo test -q --workspace --no-run 2>/dev/null || cargo test --workspace --no-run
step "binaries ready in $((SECONDS - built)) s"
out=target/debian
rm -rf "$out"
for p in dcim-server dcim-edge-agent; do
    # --fast: quicker compression (a larger .deb); CI only checks what is in it.
    cargo deb -q -p "$p" --profile dev --no-build --fast -o "$out/" >/dev/null
done
server_deb=$(ls "$out"/dcim-server_*.deb)
agent_deb=$(ls "$out"/dcim-edge-agent_*.deb)
ls -l "$out"
dpkg-deb --info "$server_deb" | grep -E "Package|Depends|Version"
# Listed to a file first: `dpkg-deb --contents | grep -q` fails under pipefail whenever grep
# stops reading before dpkg-deb has written everything (SIGPIPE).
dpkg-deb --contents "$server_deb" > "$out/contents-server.txt"
grep -q "./usr/bin/dcim-server" "$out/contents-server.txt" || fail "no binary in the package"
grep -q "lib/systemd/system/dcim-server.service" "$out/contents-server.txt" || fail "no unit in the package"
grep -q "./usr/share/doc/dcim-server/server.example.toml" "$out/contents-server.txt" || fail "no example config"
grep -q "./usr/share/dcim-server/dashboards/dcim-power.json" "$out/contents-server.txt" || fail "no dashboards"
grep -q "./usr/share/dcim-server/dashboards/provisioning/datasources/dcim-victoriametrics.yaml" "$out/contents-server.txt" || fail "no datasource provisioning"
dpkg-deb -e "$server_deb" "$out/ctl-server"
grep -qx "/etc/dcim/server.toml" "$out/ctl-server/conffiles" || fail "server.toml is not a conffile"

step "install"
# adduser is the packages' only dependency besides libc.
command -v adduser >/dev/null || apt-get install -y -qq adduser >/dev/null
dpkg -i "$server_deb" "$agent_deb" >/dev/null

step "what the install left"
getent passwd dcim >/dev/null || fail "no user dcim"
getent passwd dcim-agent >/dev/null || fail "no user dcim-agent"
id -nG dcim-agent | grep -qw dialout || fail "dcim-agent not in dialout"
[ "$(stat -c '%U:%G %a' /var/lib/dcim-server)" = "dcim:dcim 750" ] || fail "/var/lib/dcim-server: $(stat -c '%U:%G %a' /var/lib/dcim-server)"
[ "$(stat -c '%U:%G %a' /var/lib/dcim-edge-agent)" = "dcim-agent:dcim-agent 750" ] || fail "/var/lib/dcim-edge-agent"
[ "$(stat -c '%U:%G %a' /etc/dcim/server.toml)" = "root:dcim 640" ] || fail "/etc/dcim/server.toml: $(stat -c '%U:%G %a' /etc/dcim/server.toml)"
[ "$(stat -c '%U:%G %a' /etc/dcim/agent.toml)" = "root:dcim-agent 640" ] || fail "/etc/dcim/agent.toml"
[ -x /usr/bin/dcim-server ] && [ -x /usr/bin/dcim-edge-agent ] || fail "binaries"

step "units: systemd-analyze verify and security"
for u in dcim-server dcim-edge-agent; do
    # verify checks syntax, ExecStart paths, users; it needs no running systemd.
    systemd-analyze verify "/lib/systemd/system/$u.service"
    systemd-analyze security --offline=true "/lib/systemd/system/$u.service" --no-pager | tail -1
done
grep -q "^Type=notify" /lib/systemd/system/dcim-server.service || fail "not Type=notify"
grep -q "^WatchdogSec=" /lib/systemd/system/dcim-server.service || fail "no WatchdogSec"

step "the installed configuration checks as the service users"
runuser -u dcim -- /usr/bin/dcim-server --check-config /etc/dcim/server.toml
runuser -u dcim-agent -- /usr/bin/dcim-edge-agent --check-config /etc/dcim/agent.toml

if [ -d /run/systemd/system ]; then
    step "start under systemd"
    systemctl daemon-reload
    systemctl start dcim-server
    for _ in $(seq 60); do systemctl is-active -q dcim-server && break; sleep 1; done
    systemctl is-active -q dcim-server || { journalctl -u dcim-server --no-pager | tail -30; fail "dcim-server did not become active"; }
    curl -fsS http://127.0.0.1:8080/health
    systemctl reload dcim-server
    systemctl stop dcim-server
else
    step "no systemd here: run the installed services as their users with a notify socket"
    # A private network namespace: the installed configuration's fixed ports cannot collide
    # with anything else on this machine.
    timeout 120 unshare --net "$python" "$root/tests/packaging/notify_run.py"
fi
[ -f /var/lib/dcim-server/dcim.sqlite3 ] || fail "the server wrote no database under /var/lib/dcim-server"
[ "$(stat -c '%U' /var/lib/dcim-server/dcim.sqlite3)" = dcim ] || fail "database not owned by dcim"

step "backup of the installed server's database, as its user"
runuser -u dcim -- /usr/bin/dcim-server backup /var/lib/dcim-server/backup-test.sqlite3 --config /etc/dcim/server.toml

step "purge"
trap - EXIT
dpkg --purge dcim-server dcim-edge-agent >/dev/null
left=""
for f in /usr/bin/dcim-server /usr/bin/dcim-edge-agent /etc/dcim /var/lib/dcim-server \
    /var/lib/dcim-edge-agent /lib/systemd/system/dcim-server.service \
    /lib/systemd/system/dcim-edge-agent.service /usr/share/doc/dcim-server \
    /usr/share/dcim-server /usr/share/dcim-edge-agent; do
    [ -e "$f" ] && left="$left $f"
done
[ -z "$left" ] || fail "left after purge:$left"
# Kept on purpose (Debian policy): the system users.
getent passwd dcim >/dev/null && step "kept: system users dcim, dcim-agent"
step "passed in $((SECONDS - started)) s"
