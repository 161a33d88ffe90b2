#!/usr/bin/env bash
# Firmware checks for CI:
# - the rack controller board image (thumbv7em-none-eabihf, release): flash/RAM budget, and no
#   panic path (tests/firmware/panic-check.sh with tests/firmware/panic-allowlist.txt);
# - the same image on QEMU's netduinoplus2 (STM32F405), talked to over its RS-485 USART by
#   pymodbus (tests/firmware/modbus_rtu_qemu.py): the faults the emulator presents (converters,
#   backup regulator, reset flags) must be troubles, and its published stack peak within bound;
# - the emulated build of the image (feature `emulated`: the bindings swapped for a simulated
#   field) on netduinoplus2 with -icount: input states, reference, read-back, time wrap, every
#   trace through the real cycle compared with the host, a stack overflow reset and the reset
#   cause after it; its worst cycle (in instructions) and stack peak are checked against bounds;
# - the trace replay test image on an emulated Cortex-M3 (lm3s6965evb);
# - the board workspace's formatting, lints and host tests.
# Prints one PASS/FAIL line per check and a closing "N passed, M failed" line; exits non-zero on
# any failure. Bounded: every step has a timeout.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
board=firmware/board

FLASH_BUDGET=$((192 * 1024))
RAM_BUDGET=$((48 * 1024))
QEMU_TIMEOUT=${QEMU_TIMEOUT:-120}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-900}
# The stack is 48 KiB (memory.x); a measured peak must leave a quarter of it free.
STACK_BOUND=$((36 * 1024))
# Worst control cycle, in instructions (QEMU -icount shift=0: one instruction per virtual ns).
# At the board's 16 MHz and a pessimistic 3 cycles per instruction, 266 000 instructions are
# 50 ms: half the 100 ms period.
CYCLE_INSN_BOUND=266000
PYTHON=${DCIM_PYTHON:-$HOME/.cache/dcim-test-venv/bin/python}

passed=0
failed=0
pass() { printf 'PASS %s\n' "$*"; passed=$((passed + 1)); }
fail() { printf 'FAIL %s\n' "$*"; failed=$((failed + 1)); }
step() { printf '\n--> %s\n' "$*"; }

# Runs a command with a timeout; PASS/FAIL named $1; returns the command's success.
check() {
    local name=$1 rc
    shift
    timeout "$BUILD_TIMEOUT" "$@"
    rc=$?
    if [ "$rc" -eq 0 ]; then pass "$name"; else fail "$name (exit $rc: $*)"; fi
    return "$rc"
}

step "toolchain"
for target in thumbv7em-none-eabihf thumbv7m-none-eabi; do
    rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target"
done
if ! command -v qemu-system-arm >/dev/null; then
    fail "qemu-system-arm not installed (Debian package qemu-system-arm; tests/setup.sh installs it)"
fi
if ! command -v llvm-objdump >/dev/null || ! command -v llvm-addr2line >/dev/null; then
    fail "llvm-objdump / llvm-addr2line not installed (Debian package llvm; tests/setup.sh installs it)"
fi

# A `size` that reads ARM ELF files: rustup's llvm-tools, the system's LLVM, or GNU binutils.
find_size() {
    local sysroot host
    sysroot=$(rustc --print sysroot)
    host=$(rustc -vV | sed -n 's/^host: //p')
    for c in "$sysroot/lib/rustlib/$host/bin/llvm-size" llvm-size $(compgen -c llvm-size- 2>/dev/null | sort -u) arm-none-eabi-size; do
        if command -v "$c" >/dev/null 2>&1; then
            echo "$c"
            return 0
        fi
    done
    return 1
}
SIZE=$(find_size) || { rustup component add llvm-tools >/dev/null 2>&1 && SIZE=$(find_size); } || SIZE=""

step "build images (release)"
# cargo reads firmware/board/.cargo/config.toml (linker script flags) from the working directory.
# The board image and its emulated build share the binary name: each is copied aside.
image=$board/target/rack-controller-board.elf
emulated=$board/target/rack-controller-emulated.elf
built=$board/target/thumbv7em-none-eabihf/release/rack-controller
test_image=$board/target/thumbv7m-none-eabi/release/qemu-replay
rm -f "$image" "$emulated"
check "build rack-controller (thumbv7em-none-eabihf, release)" \
    env -C "$board" cargo build --release -p rack-controller --target thumbv7em-none-eabihf &&
    cp "$built" "$image"
check "build rack-controller, emulated bindings (thumbv7em-none-eabihf, release)" \
    env -C "$board" cargo build --release -p rack-controller --target thumbv7em-none-eabihf --features emulated &&
    cp "$built" "$emulated"

step "flash and RAM budget of the controller image"
if [ -z "$SIZE" ]; then
    fail "budget: no size tool (llvm-size, llvm-tools or arm-none-eabi-size)"
elif [ ! -f "$image" ]; then
    fail "budget: $image not built"
else
    "$SIZE" -A "$image" | grep -E '^(\.vector_table|\.text|\.rodata|\.data|\.bss|\.uninit)\b' || true
    read -r text data bss _ < <("$SIZE" "$image" | awk 'NR == 2 { print $1, $2, $3 }')
    flash=$((text + data))
    ram=$((data + bss))
    printf 'rack-controller: flash %d bytes (%d KiB) of %d KiB, static RAM %d bytes (%d KiB) of %d KiB (plus the 48 KiB stack)\n' \
        "$flash" $(((flash + 1023) / 1024)) $((FLASH_BUDGET / 1024)) "$ram" $(((ram + 1023) / 1024)) $((RAM_BUDGET / 1024))
    if [ "$flash" -le "$FLASH_BUDGET" ]; then pass "flash budget: $flash <= $FLASH_BUDGET bytes"; else fail "flash budget: $flash > $FLASH_BUDGET bytes"; fi
    if [ "$ram" -le "$RAM_BUDGET" ]; then pass "static RAM budget: $ram <= $RAM_BUDGET bytes"; else fail "static RAM budget: $ram > $RAM_BUDGET bytes"; fi
fi

step "no panic path in the controller image"
if [ -f "$image" ]; then
    check "panic check of the board image (allowlist: tests/firmware/panic-allowlist.txt)" \
        bash tests/firmware/panic-check.sh "$image" tests/firmware/panic-allowlist.txt
else
    fail "panic check: $image not built"
fi

step "the board image on an emulated STM32F405 (netduinoplus2), Modbus RTU from pymodbus"
if [ ! -f "$image" ]; then
    fail "board image on QEMU: not built"
elif ! command -v qemu-system-arm >/dev/null; then
    fail "board image on QEMU: qemu-system-arm missing"
elif ! "$PYTHON" -c 'import pymodbus' 2>/dev/null; then
    if [ "${DCIM_REQUIRE_PEERS:-0}" = 1 ]; then
        fail "board image on QEMU: no pymodbus in $PYTHON (tests/setup.sh installs it)"
    else
        echo "SKIP board image on QEMU: no pymodbus in $PYTHON (set DCIM_PYTHON)"
    fi
else
    check "board image on QEMU answers pymodbus and reports the emulator's missing hardware as troubles" \
        timeout "$QEMU_TIMEOUT" "$PYTHON" tests/firmware/modbus_rtu_qemu.py "$image"
fi

step "the emulated build on netduinoplus2: checks, trace replay, measurements"
if [ ! -f "$emulated" ]; then
    fail "emulated image not built"
elif ! command -v qemu-system-arm >/dev/null; then
    fail "emulated image not run: qemu-system-arm missing"
else
    log=$(mktemp)
    # -icount shift=0: one instruction per virtual nanosecond, so the image's microseconds on
    # SysTick are thousands of instructions. The image resets itself once (stack overflow test):
    # QEMU reboots it and the second boot reports the verdict.
    timeout "$QEMU_TIMEOUT" qemu-system-arm -machine netduinoplus2 -nographic -monitor none \
        -icount shift=0 -semihosting-config enable=on,target=native -kernel "$emulated" >"$log" 2>&1
    rc=$?
    grep -E '^(PASS|FAIL|MEASURE|rack-controller)' "$log" | grep -v '^PASS line ' || true
    echo "($(grep -c '^PASS line ' "$log") line-state checks passed, not listed)"
    if [ "$rc" -eq 0 ] && grep -q 'all [0-9]* checks passed' "$log"; then
        pass "emulated image: $(grep -o 'all [0-9]* checks passed' "$log")"
    elif [ "$rc" -eq 124 ]; then
        fail "emulated image timed out after ${QEMU_TIMEOUT}s"
    else
        fail "emulated image (exit $rc)"
    fi
    cycle_us=$(sed -n 's/^MEASURE worst_cycle_us=\([0-9]*\).*/\1/p' "$log" | head -n 1)
    stack=$(sed -n 's/^MEASURE stack_peak_bytes=\([0-9]*\).*/\1/p' "$log" | head -n 1)
    if [ -n "$cycle_us" ] && [ $((cycle_us * 1000)) -le "$CYCLE_INSN_BOUND" ]; then
        pass "worst control cycle: $((cycle_us * 1000)) instructions <= $CYCLE_INSN_BOUND"
    else
        fail "worst control cycle: ${cycle_us:-?} us of virtual time (x1000 instructions) over $CYCLE_INSN_BOUND instructions"
    fi
    if [ -n "$stack" ] && [ "$stack" -le "$STACK_BOUND" ]; then
        pass "stack peak of the application: $stack <= $STACK_BOUND bytes"
    else
        fail "stack peak of the application: ${stack:-?} > $STACK_BOUND bytes"
    fi
    rm -f "$log"
fi

step "emulated Cortex-M3 (qemu-system-arm lm3s6965evb)"
# The traces do not all fit the emulated MCU's 256 KiB flash at once: the test image is built
# once per group of traces (QEMU_REPLAY_GROUP, chosen by its build script) and each is run.
group=0
groups=1
while [ "$group" -lt "$groups" ]; do
    rm -f "$test_image"
    if ! QEMU_REPLAY_GROUP=$group timeout "$BUILD_TIMEOUT" env -C "$board" \
        cargo build --release -p qemu-replay --target thumbv7m-none-eabi; then
        fail "build qemu-replay, trace group $((group + 1)) (thumbv7m-none-eabi, release)"
        break
    fi
    pass "build qemu-replay, trace group $((group + 1)) (thumbv7m-none-eabi, release)"
    if ! command -v qemu-system-arm >/dev/null; then
        fail "qemu-replay not run: qemu-system-arm missing"
        break
    fi
    log=$(mktemp)
    timeout "$QEMU_TIMEOUT" qemu-system-arm -cpu cortex-m3 -machine lm3s6965evb -nographic \
        -semihosting-config enable=on,target=native -kernel "$test_image" >"$log" 2>&1
    rc=$?
    grep -v '^Timer with period zero' "$log"
    n=$(sed -n 's/.*trace group [0-9]* of \([0-9]*\).*/\1/p' "$log" | head -n 1)
    [ -n "$n" ] && groups=$n
    if [ "$rc" -eq 0 ] && grep -q 'all checks passed' "$log"; then
        pass "qemu-replay group $((group + 1)) of $groups on the emulated MCU ($(grep -c '^PASS' "$log") checks)"
    elif [ "$rc" -eq 124 ]; then
        fail "qemu-replay group $((group + 1)) timed out after ${QEMU_TIMEOUT}s"
    else
        fail "qemu-replay group $((group + 1)) on the emulated MCU (exit $rc)"
    fi
    rm -f "$log"
    group=$((group + 1))
done

step "board workspace: format, lints, host tests"
check "cargo fmt --check (firmware/board)" env -C "$board" cargo fmt -p rack-controller -p qemu-replay -- --check
check "clippy rack-controller (host)" env -C "$board" cargo clippy -p rack-controller --lib --tests -- -D warnings
check "clippy rack-controller (thumbv7em)" \
    env -C "$board" cargo clippy --release -p rack-controller --target thumbv7em-none-eabihf -- -D warnings
check "clippy rack-controller, emulated bindings (thumbv7em)" \
    env -C "$board" cargo clippy --release -p rack-controller --target thumbv7em-none-eabihf --features emulated -- -D warnings
check "clippy qemu-replay (thumbv7m)" \
    env -C "$board" cargo clippy --release -p qemu-replay --target thumbv7m-none-eabi -- -D warnings
check "host tests rack-controller" env -C "$board" cargo test -p rack-controller --lib

cd "$root"
printf '\nfirmware: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
