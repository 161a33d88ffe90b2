#!/usr/bin/env bash
# Firmware checks for CI: builds the rack controller image (thumbv7em-none-eabihf) and the QEMU
# test image (thumbv7m-none-eabi) in release mode, checks the flash/RAM budget of the controller
# image, runs the test image on an emulated Cortex-M3 (trace replay + reset in every stage),
# and runs the board workspace's formatting, lints and host tests.
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

passed=0
failed=0
pass() { printf 'PASS %s\n' "$*"; passed=$((passed + 1)); }
fail() { printf 'FAIL %s\n' "$*"; failed=$((failed + 1)); }
step() { printf '\n--> %s\n' "$*"; }

# Runs a command with a timeout; PASS/FAIL named $1.
check() {
    local name=$1
    shift
    if timeout "$BUILD_TIMEOUT" "$@"; then pass "$name"; else fail "$name (exit $?: $*)"; fi
}

step "toolchain"
for target in thumbv7em-none-eabihf thumbv7m-none-eabi; do
    rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target"
done
if ! command -v qemu-system-arm >/dev/null; then
    fail "qemu-system-arm not installed (Debian package qemu-system-arm; tests/setup.sh installs it)"
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
check "build rack-controller (thumbv7em-none-eabihf, release)" \
    env -C "$board" cargo build --release -p rack-controller --target thumbv7em-none-eabihf

image=$board/target/thumbv7em-none-eabihf/release/rack-controller
test_image=$board/target/thumbv7m-none-eabi/release/qemu-replay

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
    printf 'rack-controller: flash %d bytes (%d KiB) of %d KiB, static RAM %d bytes (%d KiB) of %d KiB\n' \
        "$flash" $(((flash + 1023) / 1024)) $((FLASH_BUDGET / 1024)) "$ram" $(((ram + 1023) / 1024)) $((RAM_BUDGET / 1024))
    if [ "$flash" -le "$FLASH_BUDGET" ]; then pass "flash budget: $flash <= $FLASH_BUDGET bytes"; else fail "flash budget: $flash > $FLASH_BUDGET bytes"; fi
    if [ "$ram" -le "$RAM_BUDGET" ]; then pass "static RAM budget: $ram <= $RAM_BUDGET bytes"; else fail "static RAM budget: $ram > $RAM_BUDGET bytes"; fi
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
check "clippy qemu-replay (thumbv7m)" \
    env -C "$board" cargo clippy --release -p qemu-replay --target thumbv7m-none-eabi -- -D warnings
check "host tests rack-controller" env -C "$board" cargo test -p rack-controller --lib

cd "$root"
printf '\nfirmware: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
