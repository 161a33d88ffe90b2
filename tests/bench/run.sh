#!/usr/bin/env bash
# Side-by-side performance run: edge polling (this agent's poller, Node-RED with
# node-red-contrib-modbus, a pymodbus poller, and the loopback request/response ceiling) and
# server ingest + alarm latency (dcim-server vs a Node-RED threshold flow on mosquitto), all on
# loopback in one run, printed as one Markdown table.
#
#   bash tests/bench/run.sh
#
# Environment (defaults in brackets): DEVICES [20] simulated Modbus TCP devices, REGS [125]
# input registers read per request, LEG_SECONDS [5] measured seconds per leg,
# LOADS ["100000 1000000 2000000"] offered points/s for the server legs, BATCH [500] samples per
# MQTT message, BUILD [1] (0: skip the cargo builds, use the binaries in target/release), DCIM_PYTHON [~/.cache/dcim-test-venv/bin/python] (needs pymodbus),
# PARTS ["edge server"] which tables to measure, SITE_RACKS [4000] racks of the site model the
# server runs (dcim-scale-bench's generated site; 0: none), CONSOLE [1] (1: while each server leg
# runs, a console polls /api/status, /api/alarms, /api/site/redundancy and /api/points every 2 s).
# The Node-RED legs count mosquitto's CPU as well as Node-RED's (two per-sample columns: the
# consumer alone, and with its broker), as dcim-server's figure includes its embedded broker.
# Not part of CI: it takes a few minutes and the numbers depend on the machine.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BENCH=$ROOT/tests/bench
DEVICES=${DEVICES:-20}
REGS=${REGS:-125}
S=${LEG_SECONDS:-5}
LOADS=${LOADS:-"100000 1000000 2000000"}
BATCH=${BATCH:-500}
PARTS=${PARTS:-"edge server"}
SITE_RACKS=${SITE_RACKS:-4000}
CONSOLE=${CONSOLE:-1}
PY=${DCIM_PYTHON:-$HOME/.cache/dcim-test-venv/bin/python}
T=$(mktemp -d /tmp/dcim-bench.XXXXXX)
ROWS=$T/rows.md
: >"$ROWS"
PIDS=()

cleanup() {
    exec 3>&- 2>/dev/null
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.5
    rm -rf "$T"
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*" >&2; }
row() { printf '| %s |\n' "$*" >>"$ROWS"; }
# kv "key=value ..." key -> value
kv() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_of() { awk '{ sub(/^.*\) /, ""); print ($12 + $13) / 100 }' "/proc/$1/stat"; }
wait_http() { # url seconds
    local end=$((SECONDS + $2))
    while ((SECONDS < end)); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.3; done
    return 1
}
# replays "$R": ", N dropped as replays" when the server dropped samples of batches it had already
# (a publisher reusing seqs), so that they are not read as loss; nothing otherwise.
replays() { local d; d=$(kv "$1" duplicates); [ -n "$d" ] && [ "$d" != 0 ] && printf ', %s dropped as replays' "$d"; }
fmt() { python3 -c 'import sys; v=sys.argv[1]; print(f"{float(v):,.0f}" if v not in ("", "None", "nan") else "-")' "${1:-}"; }

if [ "${BUILD:-1}" = 1 ]; then
    say "building (release): dcim-server, facility-sim, the dcim-modbus poll_throughput bench, tests/bench/loadgen"
    cargo build --release -q -p dcim-server --bin dcim-server && cargo build --release -q -p dcim-demo --bin dcim-scale-bench || exit 1
    cargo build --release -q -p facility-sim --bin facility-sim || exit 1
    POLL_BENCH=$(cargo bench -p dcim-modbus --bench poll_throughput --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*poll_throughput-[0-9a-f]*\)).*/\1/p' | tail -1)
    [ -x "$POLL_BENCH" ] || { echo "cannot build the dcim-modbus poll_throughput bench" >&2; exit 1; }
else # BUILD=0: use the release binaries already in target/ (e.g. while the build lock is busy)
    POLL_BENCH=$(ls -t target/release/deps/poll_throughput-* 2>/dev/null | grep -v '\.d$' | head -1)
fi
(cd "$BENCH/loadgen" && cargo build --release -q) || exit 1
LOAD=$BENCH/loadgen/target/release/dcim-bench-load
NODE_RED_OK=1
if [ ! -f "$BENCH/node_modules/node-red/red.js" ]; then
    (cd "$BENCH" && npm ci --no-audit --no-fund >"$T/npm.log" 2>&1) || NODE_RED_OK=0
fi
NR_WHY="npm ci in tests/bench failed (see its log)"
command -v node >/dev/null || { NODE_RED_OK=0; NR_WHY="node not installed"; }
PYMODBUS_OK=1
"$PY" -c 'import pymodbus' 2>/dev/null || PYMODBUS_OK=0

CORES=$(nproc)
CPU=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)

# ------------------------------------------------------------------------------------------
# 1. Edge polling
if [[ " $PARTS " == *" edge "* ]]; then
say "simulated devices: facility-sim --racks $DEVICES (Modbus TCP, one port each)"
mkfifo "$T/simin"
./target/release/facility-sim --racks "$DEVICES" --ups 0 --meters 0 --no-camera \
    <"$T/simin" >"$T/sim.out" 2>"$T/sim.err" &
PIDS+=($!)
exec 3>"$T/simin"
for _ in $(seq 50); do
    [ "$(grep -c 'kind=rack-bms.*modbus=' "$T/sim.out")" -ge "$DEVICES" ] && break
    sleep 0.2
done
ADDRS=$(grep 'kind=rack-bms' "$T/sim.out" | grep -o 'modbus=[0-9.:]*' | cut -d= -f2 | paste -sd,)
[ -n "$ADDRS" ] || { echo "facility-sim did not start: $(cat "$T/sim.err")" >&2; exit 1; }

row "Edge poller ($DEVICES devices x $REGS input registers, FC4, one read in flight per device) | points/s | poller CPU s | points per CPU-second | % of ceiling"
row "--- | ---: | ---: | ---: | ---:"
EDGE=()

say "ceiling: minimal blocking Rust client, $REGS and 1 registers per read"
C125=$("$LOAD" modbus --addrs "$ADDRS" --regs "$REGS" --seconds "$S" 2>&1 | tail -1)
echo "$C125" >&2
C1=$("$LOAD" modbus --addrs "$ADDRS" --regs 1 --seconds "$S" 2>&1 | tail -1)
echo "$C1" >&2
CEIL=$(kv "$C125" points_per_s)
pct() { python3 -c 'import sys; a,b=sys.argv[1:]; print(f"{100*float(a)/float(b):.0f}%" if a and b and float(b)>0 else "-")' "${1:-}" "${CEIL:-}"; }

say "(a) dcim-modbus poller, back to back: cargo bench -p dcim-modbus --bench poll_throughput -- --devices $DEVICES --points $REGS --seconds $S --period-ms 0"
A=$("$POLL_BENCH" --bench --devices "$DEVICES" --points "$REGS" --seconds "$S" --period-ms 0 2>/dev/null)
echo "$A" >&2
A_PPS=$(sed -n 's/^points_polled_per_s_one_core=//p' <<<"$A")
A_CPU=$(grep -o 'poller_thread_cpu_s=[0-9.]*' <<<"$A" | cut -d= -f2)
A_PPC=$(grep -o 'points_per_cpu_second=[0-9.]*' <<<"$A" | cut -d= -f2)
if [ -n "$A_PPS" ]; then
    EDGE+=("dcim-modbus poller (this agent; one current-thread runtime, polling back to back; devices served in-process by facility-sim's serve_tcp) | $(fmt "$A_PPS") | $A_CPU | $(fmt "$A_PPC") | $(pct "$A_PPS")")
else
    EDGE+=("dcim-modbus poller | not measured: the bench printed no result | | |")
fi

if ((NODE_RED_OK)); then
    say "(b) Node-RED + node-red-contrib-modbus (modbus-getter loop per device)"
    NRP=$(free_port)
    python3 "$BENCH/nodered_flows.py" modbus "$T/nr-modbus" "$NRP" --addrs "$ADDRS" --regs "$REGS"
    node "$BENCH/node_modules/node-red/red.js" --settings "$T/nr-modbus/settings.js" >"$T/nr-modbus.log" 2>&1 &
    NRPID=$!
    PIDS+=($NRPID)
    if wait_http "http://127.0.0.1:$NRP/bench/stats" 60; then
        sleep 3 # connections up, loops running
        s0=$(curl -s "http://127.0.0.1:$NRP/bench/stats")
        c0=$(cpu_of $NRPID)
        t0=$(date +%s.%N)
        sleep "$S"
        s1=$(curl -s "http://127.0.0.1:$NRP/bench/stats")
        c1=$(cpu_of $NRPID)
        t1=$(date +%s.%N)
        B=$(python3 - "$s0" "$s1" "$t0" "$t1" "$c0" "$c1" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
el = float(sys.argv[4]) - float(sys.argv[3])
cpu = max(float(sys.argv[6]) - float(sys.argv[5]), 0.01)
n = b["points"] - a["points"]
r = b["reads"] - a["reads"]
print(f"points_per_s={n / el:.0f} cpu_s={cpu:.2f} points_per_cpu_s={n / cpu:.0f} reads_per_s={r / el:.0f}")
PY
)
        echo "node-red modbus $B" >&2
        EDGE+=("Node-RED $(node -p 'require("'"$BENCH"'/node_modules/node-red/package.json").version') + node-red-contrib-modbus $(node -p 'require("'"$BENCH"'/node_modules/node-red-contrib-modbus/package.json").version') (whole node process) | $(fmt "$(kv "$B" points_per_s)") | $(kv "$B" cpu_s) | $(fmt "$(kv "$B" points_per_cpu_s)") | $(pct "$(kv "$B" points_per_s)")")
    else
        EDGE+=("Node-RED + node-red-contrib-modbus | not measured: Node-RED did not start (see its log) | | |")
    fi
    kill $NRPID 2>/dev/null
else
    EDGE+=("Node-RED + node-red-contrib-modbus | not measured: $NR_WHY | | |")
fi

if ((PYMODBUS_OK)); then
    say "(c) pymodbus $("$PY" -c 'import pymodbus; print(pymodbus.__version__)') asyncio poller"
    C=$("$PY" "$BENCH/pymodbus_poller.py" --addrs "$ADDRS" --regs "$REGS" --seconds "$S" 2>&1 | tail -1)
    echo "$C" >&2
    EDGE+=("pymodbus $("$PY" -c 'import pymodbus; print(pymodbus.__version__)') AsyncModbusTcpClient, one asyncio loop (whole python process) | $(fmt "$(kv "$C" points_per_s)") | $(kv "$C" cpu_s) | $(fmt "$(kv "$C" points_per_cpu_s)") | $(pct "$(kv "$C" points_per_s)")")
else
    EDGE+=("pymodbus poller | not measured: pymodbus not importable by $PY (run bash tests/setup.sh) | | |")
fi
EDGE+=("Ceiling: minimal blocking Rust client, one thread per device, $REGS registers per read (tests/bench/loadgen) | $(fmt "$CEIL") | $(kv "$C125" client_cpu_s) | $(fmt "$(kv "$C125" points_per_cpu_s)") | 100%")
EDGE+=("Ceiling, 1 register per read (request/response round trips: $(fmt "$(kv "$C1" reads_per_s)") reads/s) | $(fmt "$(kv "$C1" points_per_s)") | $(kv "$C1" client_cpu_s) | $(fmt "$(kv "$C1" points_per_cpu_s)") | -")
for e in "${EDGE[@]}"; do row "$e"; done
exec 3>&- # facility-sim exits when its stdin closes
fi

# ------------------------------------------------------------------------------------------
# 2. Server ingest and alarm latency
SRV=()
RSS=()
peak_mb() { awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null; }
if [[ " $PARTS " == *" server "* ]]; then
say "dcim-server (embedded broker) at offered loads: $LOADS"
HP=$(free_port)
MP=$(free_port)
mkdir -p "$T/srv"
if ((SITE_RACKS > 0)); then
    ./target/release/dcim-scale-bench --racks "$SITE_RACKS" --write-site "$T/srv/site.toml" || exit 1
fi
cat >"$T/srv/server.toml" <<EOF
data_dir = "$T/srv/data"
$( ((SITE_RACKS > 0)) && echo "site_model = \"$T/srv/site.toml\"" )
[http]
listen = "127.0.0.1:$HP"
[broker]
listen = "127.0.0.1:$MP"
max_payload = 8388608
[auth]
argon2_memory_kib = 64
argon2_iterations = 1
[[agents]]
id = "load0"
site = "bench"
password = "load0-secret"
devices = ["devload0-*", "rack-*"]
[[agents]]
id = "load1"
site = "bench"
password = "load1-secret"
devices = ["devload1-*"]
EOF
DCIM_ADMIN_PASSWORD=bench-admin-pass RUST_LOG=error ./target/release/dcim-server --config "$T/srv/server.toml" >"$T/srv/log" 2>&1 &
SRVPID=$!
PIDS+=($SRVPID)
if wait_http "http://127.0.0.1:$HP/health" 30; then
    TOKEN=$(./target/release/dcim-server user token --name admin --label bench --config "$T/srv/server.toml" 2>/dev/null | grep -o 'dcim_[0-9a-f]*' | tail -1)
    for L in $LOADS; do
        say "dcim-server at $L points/s"
        CPID=
        if ((CONSOLE)); then
            (while :; do
                for p in /api/status /api/alarms /api/site/redundancy /api/points?limit=2000; do
                    curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$HP$p"
                done
                sleep 2
            done) &
            CPID=$!
        fi
        R=$("$PY" "$BENCH/load_leg.py" --kind server --stats "http://127.0.0.1:$HP/metrics" --token "$TOKEN" --pid $SRVPID -- \
            "$LOAD" mqtt --port "$MP" --user x --agents load0,load1 --site bench --rate "$L" --batch "$BATCH" \
            --seconds "$S" --probe-ms 50 --drain-ms 3000 --sse "127.0.0.1:$HP" --token "$TOKEN" 2>"$T/leg.err" | tail -1)
        [ -n "$CPID" ] && kill "$CPID" 2>/dev/null
        echo "$R" >&2
        SRV+=("dcim-server $(./target/release/dcim-server --version | awk '{print $2}') (embedded broker, ACL, ingest, alarm engine, SQLite) | $(fmt "$L") | $(fmt "$(kv "$R" achieved_pub_pps)") | $(fmt "$(kv "$R" ingest_pps)") | $(kv "$R" taken_in)$(grep -o ' ([0-9.]*%)' <<<"$R")$(replays "$R") | $(kv "$R" alarms_seen)/$(kv "$R" alarm_probes) | $(kv "$R" alarm_p50_ms) | $(kv "$R" alarm_p99_ms) | $(kv "$R" stream_p99_ms) | $(kv "$R" consumer_cpu_s) | (embedded) | $(kv "$R" cpu_us_per_sample) | $(kv "$R" cpu_us_per_sample_with_broker)")
    done
else
    SRV+=("dcim-server | not measured: the server did not answer /health (log: $(tail -1 "$T/srv/log")) | | | | | | | | | | |")
fi
RSS+=("dcim-server $(peak_mb $SRVPID) MB")
kill $SRVPID 2>/dev/null

if ((NODE_RED_OK)) && [ -x /usr/sbin/mosquitto ]; then
    say "Node-RED threshold flow on mosquitto at offered loads: $LOADS"
    QP=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\nmessage_size_limit 8388608\n' "$QP" >"$T/mosquitto.conf"
    /usr/sbin/mosquitto -c "$T/mosquitto.conf" >"$T/mosquitto.log" 2>&1 &
    MQPID=$!
    PIDS+=($MQPID)
    NRP=$(free_port)
    python3 "$BENCH/nodered_flows.py" mqtt "$T/nr-mqtt" "$NRP" --mqtt-port "$QP"
    node "$BENCH/node_modules/node-red/red.js" --settings "$T/nr-mqtt/settings.js" >"$T/nr-mqtt.log" 2>&1 &
    NRPID=$!
    PIDS+=($NRPID)
    if wait_http "http://127.0.0.1:$NRP/bench/stats" 60; then
        sleep 3 # subscription in place
        NRV=$(node -p 'require("'"$BENCH"'/node_modules/node-red/package.json").version')
        MV=$(/usr/sbin/mosquitto -h 2>/dev/null | head -1 | awk '{print $3}')
        for L in $LOADS; do
            say "Node-RED at $L points/s"
            R=$("$PY" "$BENCH/load_leg.py" --kind nodered --stats "http://127.0.0.1:$NRP/bench/stats" --pid $NRPID --broker-pid $MQPID -- \
                "$LOAD" mqtt --port "$QP" --agents load0,load1 --site bench --rate "$L" --batch "$BATCH" \
                --seconds "$S" --probe-ms 50 --drain-ms 0 2>"$T/leg.err" | tail -1)
            echo "$R" >&2
            SRV+=("Node-RED $NRV (mqtt in -> json -> threshold function) on mosquitto $MV | $(fmt "$L") | $(fmt "$(kv "$R" achieved_pub_pps)") | $(fmt "$(kv "$R" ingest_pps)") | $(kv "$R" taken_in)$(grep -o ' ([0-9.]*%)' <<<"$R") | $(kv "$R" alarms_seen)/$(kv "$R" alarm_probes) | $(kv "$R" alarm_p50_ms) | $(kv "$R" alarm_p99_ms) | $(kv "$R" stream_p99_ms) | $(kv "$R" consumer_cpu_s) | $(kv "$R" broker_cpu_s) | $(kv "$R" cpu_us_per_sample) | $(kv "$R" cpu_us_per_sample_with_broker)")
        done
        RSS+=("Node-RED $(peak_mb $NRPID) MB + mosquitto $(peak_mb $MQPID) MB")
    else
        SRV+=("Node-RED threshold flow | not measured: Node-RED did not start | | | | | | | | | | |")
    fi
else
    SRV+=("Node-RED threshold flow | not measured: ${NR_WHY} or no /usr/sbin/mosquitto | | | | | | | | | | |")
fi

fi

echo >>"$ROWS"
if [[ " $PARTS " == *" server "* ]]; then
{
    row "Server consumer (publisher: tests/bench/loadgen, QoS 0, $BATCH samples/message, 2 connections, ${S} s per step) | offered points/s | published points/s | taken in points/s | samples taken in | alarms seen/probes | alarm p50 ms (sample time -> decision) | alarm p99 ms (sample time -> decision) | alarm p99 ms (sample time -> committed, on the stream) | consumer CPU s | broker CPU s (mosquitto; dcim-server's broker is in its own figure) | CPU µs per sample, consumer alone | CPU µs per sample, consumer + broker"
    row "--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---:"
    for e in "${SRV[@]}"; do row "$e"; done
}
echo >>"$ROWS"
echo "Server legs: site model of $SITE_RACKS racks (0: none); console polling every 2 s: $CONSOLE. Peak resident memory over all legs: ${RSS[*]}." >>"$ROWS"
fi

echo
echo "Machine: $CORES cores, $CPU; loopback only; $(date -u +%Y-%m-%dT%H:%MZ); commit $(git rev-parse --short HEAD)"
echo
cat "$ROWS"
