#!/usr/bin/env bash
# Worst-case and mean instruction count of one fire-logic step (RackLogic::step) on the host,
# measured with valgrind's callgrind: the workload (firmware/rack-registers/examples/step_cost.rs)
# calls every step through `measured_step`; callgrind collects only inside that function and
# writes a profile dump each time it is entered (and at exit), so each dump holds exactly one
# step: the previous one.
# x86-64 instructions, release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "FAIL valgrind not installed (Debian package valgrind)"; exit 1; }
cargo build --release -q -p rack-registers --example step_cost
exe=target/release/examples/step_cost
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" --collect-atstart=no \
    --toggle-collect=step_cost::measured_step --dump-before=step_cost::measured_step \
    "$exe" >"$out/run.log" 2>"$out/vg.log"
cat "$out/run.log"
python3 - "$out" <<'PY'
import glob, os, re, sys
costs = []
for f in glob.glob(os.path.join(sys.argv[1], "cg.*")):
    total = None
    with open(f) as fh:
        for line in fh:
            if line.startswith("totals:") or line.startswith("summary:"):
                total = int(line.split()[1])
    if total:
        costs.append(total)
if not costs:
    print("FAIL no per-step dumps found"); sys.exit(1)
costs.sort()
n = len(costs)
print(f"fire-logic step on x86-64 (release), {n} steps: worst {costs[-1]} instructions, "
      f"p99 {costs[int(n * 0.99) - 1]}, median {costs[n // 2]}, mean {sum(costs) / n:.0f}")
PY
