#!/usr/bin/env bash
# Model-checks the rack fire stage machine with Spin: every `ltl` claim of
# firmware/fire-logic/model/stages.pml (safety claims as safety searches, liveness claims with
# acceptance-cycle search), then checks that the model reaches every statement, then seeds a
# few known faults into a copy of the model and checks that a claim catches each of them (a
# claim that cannot fail proves nothing). The model's thresholds and delays are tied to
# `fire_logic::Config::default()` by `cargo test -p fire-logic --test it -- model::`.
#
# Prints one PASS/FAIL line per check and a closing "N passed, M failed"; exits non-zero on
# any failure. Bounded: every step has a timeout (the whole run takes a few seconds).
set -uo pipefail
cd "$(dirname "$0")/../.."
model=firmware/fire-logic/model/stages.pml
STEP_TIMEOUT=${STEP_TIMEOUT:-60}

passed=0
failed=0
pass() { printf 'PASS %s\n' "$*"; passed=$((passed + 1)); }
fail() { printf 'FAIL %s\n' "$*"; failed=$((failed + 1)); }

if ! command -v spin >/dev/null; then
    echo "FAIL spin not installed (Debian package spin; tests/setup.sh installs it)"
    exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Builds the verifier for a model file into $work/$2.
build() {
    (cd "$work" && timeout "$STEP_TIMEOUT" spin -a "$1" >spin.log 2>&1 &&
        timeout "$STEP_TIMEOUT" cc -O2 -w -o "$2" pan.c) || {
        cat "$work/spin.log" 2>/dev/null
        return 1
    }
}

# Runs claim $2 with verifier $1; prints the pan output; returns 0 when it found no error.
verify() {
    local pan=$1 claim=$2 flags=""
    case "$claim" in
    evidence_* | burnt_* | gas_request_*) flags="-a" ;;
    esac
    (cd "$work" && timeout "$STEP_TIMEOUT" "./$pan" $flags -N "$claim" -m1000000) >"$work/pan.log" 2>&1
    grep -q 'errors: 0' "$work/pan.log"
}

cp "$model" "$work/stages.pml"
if ! build stages.pml pan; then
    fail "spin -a $model and compile the verifier"
    printf '\nmodel: %d passed, %d failed\n' "$passed" "$failed"
    exit 1
fi
claims=$(sed -n 's/^ltl \([a-z0-9_]*\) .*/\1/p' "$model")
[ -n "$claims" ] || fail "no ltl claims found in $model"
for claim in $claims; do
    if verify pan "$claim"; then
        states=$(sed -n 's/^ *\([0-9e.+]*\) states, stored.*/\1/p' "$work/pan.log")
        pass "ltl $claim ($states states)"
    else
        grep -E 'errors:|violated|acceptance cycle|assertion' "$work/pan.log" | head -5
        fail "ltl $claim"
    fi
done
# Every statement of the model is reached (an unreachable branch is a rule never checked).
unreached=$(sed -n '/unreached in proctype rack/,/unreached in claim/p' "$work/pan.log" |
    grep -c 'stages.pml:' || true)
if [ "${unreached:-0}" -le 1 ]; then
    pass "every statement of the model is reached"
else
    sed -n '/unreached in proctype rack/,/unreached in claim/p' "$work/pan.log"
    fail "unreached statements in the model"
fi

# Seeded faults: each must be caught by the named claim.
mutant() {
    local name=$1 claim=$2 from=$3 to=$4
    if ! python3 - "$work/stages.pml" "$work/mutant.pml" "$from" "$to" <<'EOF'; then
import sys
src, dst, a, b = sys.argv[1:5]
text = open(src).read()
if a not in text:
    sys.exit(f"pattern not found: {a!r}")
open(dst, "w").write(text.replace(a, b))
EOF
        fail "seeded fault '$name': pattern no longer in the model (update tests/model/run.sh)"
        return
    fi
    if ! build mutant.pml mpan; then
        fail "seeded fault '$name': does not compile"
    elif verify mpan "$claim"; then
        fail "seeded fault '$name' not caught by $claim"
    else
        pass "seeded fault '$name' caught by $claim"
    fi
}
mutant "the room gas release skips the warning" warning_precedes_every_gas_release \
    $'            gas_manual = true\n' \
    $'            gas_manual = true;\n            if :: stage == ST5 -> gas = RELEASED :: else -> skip fi\n'
mutant "a restore gives the stage timer no credit" burnt_after_agent_gets_coolant \
    'timer = MIN(timer + CREDIT_T, GAS_T)' 'skip'
mutant "stage 4 demands a valid temperature" burnt_after_agent_gets_coolant \
    'notfallen = (gov == NONE || ' 'notfallen = ('
mutant "the agent ignores manual-only" manual_only_never_releases_by_itself \
    'stage >= ST3 && !agent && !mo -> agent = true' 'stage >= ST3 && !agent -> agent = true'
mutant "stage 3 without independent corroboration" no_release_without_evidence \
    'ev3 = (gov >= STAGE3 && indep);' 'ev3 = (gov >= STAGE3);'
mutant "a reset while hot" forward_only \
    $'gov != NONE && gov < RESET_MAX && !smoke && offgas == 0 ->\n                reset_ok = true;' \
    $'true ->\n                reset_ok = true;'
mutant "a restore restarts the warning" gas_request_leads_to_release \
    ':: ev != EV_RESTART -> warn = MIN(warn + 1, WARN_T) :: else -> skip fi;' \
    ':: ev != EV_RESTART -> warn = MIN(warn + 1, WARN_T) :: else -> warn = 0 fi;'

printf '\nmodel: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
