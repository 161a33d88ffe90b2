#!/usr/bin/env bash
# Runs every fuzz target in turn (one fuzz process at a time) for a time budget, then minimises
# each corpus back into tests/fuzz/corpus/<target>/, and prints budget / executions / crashes
# per target. Exit status 1 if any target crashed (the crashing inputs are left in
# tests/fuzz/artifacts/<target>/, the libFuzzer log in the log directory, and the distinct
# panic locations are printed).
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
# Skip inputs that hit bugs already reported (reproducers in tests/fuzz/regressions/).
export DCIM_FUZZ_SKIP_KNOWN="${DCIM_FUZZ_SKIP_KNOWN:-1}"
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

bin_dir=tests/fuzz/target/x86_64-unknown-linux-gnu/release
declare -A execs crashes panics
failed=0
for t in "${targets[@]}"; do
    mkdir -p "tests/fuzz/corpus/$t"
    echo "==> $t: ${secs}s"
    touch "$logs/$t.start"
    # Fork mode with one job (still one fuzzing process at a time): a crash is recorded in
    # tests/fuzz/artifacts/<t>/ and fuzzing goes on, so a known crashing input in the corpus
    # does not stop the search for other bugs.
    set +e
    cargo fuzz run "${flags[@]}" "$t" "tests/fuzz/corpus/$t" -- \
        -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
        -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=10 \
        -rss_limit_mb=2048 >"$logs/$t.log" 2>&1
    rc=$?
    set -e
    stats=$(grep -E '^#[0-9]+: cov:' "$logs/$t.log" | tail -1)
    execs[$t]=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$stats")
    # "oom/timeout/crash: a/b/c"
    crashes[$t]=$(sed -nE 's#.*oom/timeout/crash: ([0-9]+)/([0-9]+)/([0-9]+).*#\1 \2 \3#p' <<<"$stats" |
        awk '{print $1 + $2 + $3}')
    crashes[$t]=${crashes[$t]:-$([[ $rc -eq 0 ]] && echo 0 || echo "?")}
    # Distinct panic locations of the inputs saved during this run.
    panics[$t]=$(find "tests/fuzz/artifacts/$t" -type f -newer "$logs/$t.start" 2>/dev/null | head -50 |
        while read -r a; do "$bin_dir/$t" "$a" 2>&1 | grep -oE 'panicked at [^ ]+' || true; done |
        sort | uniq -c | sed 's/^ *//' | paste -sd';' - || true)
    if [[ $rc -ne 0 || "${crashes[$t]}" != "0" ]]; then
        failed=1
        echo "CRASH in $t (exit $rc); log: $logs/$t.log; ${panics[$t]}"
    fi
    # Keep the smallest corpus that covers the same edges (crashing inputs are not added).
    cargo fuzz cmin "${flags[@]}" "$t" "tests/fuzz/corpus/$t" -- -max_len="$(max_len "$t")" \
        >"$logs/$t.cmin.log" 2>&1 || echo "cmin of $t failed; log: $logs/$t.cmin.log"
done

printf '\n%-20s %8s %12s %8s %7s  %s\n' target budget executions crashes corpus panics
for t in "${targets[@]}"; do
    printf '%-20s %7ss %12s %8s %7s  %s\n' "$t" "$secs" "${execs[$t]:-?}" "${crashes[$t]}" \
        "$(find "tests/fuzz/corpus/$t" -type f | wc -l)" "${panics[$t]}"
done
echo "logs: $logs"
exit $failed
