#!/usr/bin/env bash
# Runs every fuzz target in turn (one fuzz process at a time) for a time budget, then minimises
# each corpus back into tests/fuzz/corpus/<target>/, and prints budget / executions / crashes
# per target. Exit status 1 if any target crashed (the crashing input is left in
# tests/fuzz/artifacts/<target>/ and the libFuzzer log in the log directory).
#
#   bash tests/fuzz/run.sh [seconds-per-target] [target...]
#
# cargo-fuzz drives libFuzzer with unstable rustc flags; on a stable toolchain that needs
# RUSTC_BOOTSTRAP=1. The build has debug assertions on (integer overflow panics) and no
# sanitizer: the decoders are safe Rust (`forbid(unsafe_code)`), so a panic is the failure
# mode to find, and a build without ASan runs several times faster.
#
# The bounded, stable-toolchain part is `cargo test -p fuzz-smoke`, which replays every corpus
# input through the same harness functions (tests/fuzz-smoke/src).
set -euo pipefail
cd "$(dirname "$0")/../.."

secs="${1:-180}"
shift || true
export RUSTC_BOOTSTRAP=1
flags=(--fuzz-dir tests/fuzz -O -a -s none)
logs="${FUZZ_LOG_DIR:-$(mktemp -d)}"
mkdir -p "$logs"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list --fuzz-dir tests/fuzz)
fi

echo "building ${#targets[@]} fuzz targets"
cargo fuzz build "${flags[@]}"

max_len() {
    case "$1" in
    profile_toml | site_toml | fire_trace) echo 16384 ;;
    *) echo 4096 ;;
    esac
}

declare -A execs crashed
failed=0
for t in "${targets[@]}"; do
    mkdir -p "tests/fuzz/corpus/$t"
    echo "==> $t: ${secs}s"
    set +e
    cargo fuzz run "${flags[@]}" "$t" "tests/fuzz/corpus/$t" -- \
        -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 >"$logs/$t.log" 2>&1
    rc=$?
    set -e
    execs[$t]=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$' | tail -1)
    if [[ $rc -ne 0 ]]; then
        crashed[$t]=1
        failed=1
        echo "CRASH in $t (exit $rc); log: $logs/$t.log"
        grep -E 'panicked at|SUMMARY|Test unit written' "$logs/$t.log" | head -5 || true
    else
        crashed[$t]=0
        # Keep the smallest corpus that covers the same edges.
        cargo fuzz cmin "${flags[@]}" "$t" "tests/fuzz/corpus/$t" -- -max_len="$(max_len "$t")" \
            >"$logs/$t.cmin.log" 2>&1
    fi
done

printf '\n%-20s %8s %12s %8s %7s\n' target budget executions crashes corpus
for t in "${targets[@]}"; do
    printf '%-20s %7ss %12s %8s %7s\n' "$t" "$secs" "${execs[$t]:-?}" "${crashed[$t]}" \
        "$(find "tests/fuzz/corpus/$t" -type f | wc -l)"
done
echo "logs: $logs"
exit $failed
