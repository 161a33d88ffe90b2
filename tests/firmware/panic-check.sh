#!/usr/bin/env bash
# Checks that a Cortex-M image has no reachable panic: every call into the panic machinery of
# `core` (bounds checks, slice length checks, RefCell borrows, unwrap/expect, arithmetic
# overflow, panic!) is listed with the source function it was inlined from, and any call whose
# origin is not in the allowlist fails the check. Also fails if the image links the formatting
# machinery (`core::fmt::Formatter`, `core::fmt::write`), which a panic message would need.
#
# Usage: panic-check.sh IMAGE [ALLOWLIST]
# ALLOWLIST: one Rust path prefix per line (e.g. `fire_logic::latch::Writer::put`), `#` starts a
# comment. Needs llvm-nm, llvm-objdump and llvm-addr2line (Debian package `llvm`).
# Exit status 0 when clean; prints one line per call site.
set -uo pipefail
image=${1:?usage: panic-check.sh IMAGE [ALLOWLIST]}
allowlist=${2:-}

tool() {
    local name=$1 c
    for c in "$name" $(compgen -c "$name-" 2>/dev/null | sort -rV); do
        if command -v "$c" >/dev/null 2>&1; then
            echo "$c"
            return 0
        fi
    done
    echo "panic-check: $name not found (install the Debian package llvm)" >&2
    return 1
}
NM=$(tool llvm-nm) && OBJDUMP=$(tool llvm-objdump) && ADDR2LINE=$(tool llvm-addr2line) || exit 2

allowed=()
if [ -n "$allowlist" ]; then
    while IFS= read -r line; do
        line=${line%%#*}
        line=$(echo "$line" | tr -d '[:space:]')
        [ -n "$line" ] && allowed+=("$line")
    done <"$allowlist"
fi

status=0
symbols=$("$NM" -C "$image") || exit 2
if grep -qE ' core::fmt::(Formatter|write)\b' <<<"$symbols"; then
    echo "panic-check: the image links core::fmt formatting machinery:"
    grep -E ' core::fmt::(Formatter|write)\b' <<<"$symbols" | head -5
    status=1
fi

# The panic entry points: the panic handler and core's panicking functions.
mapfile -t entries < <(awk '
    $2 ~ /^[tT]$/ {
        name = $0; sub(/^[0-9a-f]+ [tT] /, "", name)
        if (name ~ /^__rustc::rust_begin_unwind$|^rust_begin_unwind$|^core::panicking::|^core::option::(expect|unwrap)_failed|^core::result::unwrap_failed|^core::slice::.*_fail$|^core::cell::panic_|^core::str::slice_error_fail/)
            print $1, name
    }' <<<"$symbols")
if [ "${#entries[@]}" -eq 0 ]; then
    echo "panic-check: no panic machinery linked: nothing can panic"
    exit "$status"
fi

declare -A entry_addr=()
for e in "${entries[@]}"; do
    a=$((16#${e%% *}))
    entry_addr[$(printf '%x' "$a")]=${e#* }
done

# Call sites outside the panic functions themselves.
sites=()
current=""
while IFS= read -r line; do
    if [[ $line =~ ^([0-9a-f]+)\ \<(.*)\>:$ ]]; then
        current=${BASH_REMATCH[2]}
        continue
    fi
    if [[ $line =~ ^\ *([0-9a-f]+):.*[[:space:]](bl|b\.w|b|blx|beq|bne|bhs|blo|bhi|bls|bge|blt|bgt|ble|bmi|bpl|bcs|bcc)(\.w)?[[:space:]]+0x([0-9a-f]+) ]]; then
        target=${BASH_REMATCH[4]}
        if [ -n "${entry_addr[$target]:-}" ]; then
            case $current in
                *rust_begin_unwind* | core::panicking::* | core::slice::*_fail* | core::cell::panic_* | core::option::*_failed | core::result::unwrap_failed) ;;
                *) sites+=("${BASH_REMATCH[1]} ${entry_addr[$target]}") ;;
            esac
        fi
    fi
done < <("$OBJDUMP" -d -C --no-show-raw-insn "$image")

declare -A used=()
bad=0
for s in "${sites[@]}"; do
    addr=${s%% *}
    callee=${s#* }
    # The innermost frame that is not core/alloc/std code: where the panic comes from.
    origin=$("$ADDR2LINE" -f -i -C -e "$image" "0x$addr" | paste - - |
        awk -F'\t' '$2 !~ /^\/rustc\// { print $1; exit }' | sed -E 's/::h[0-9a-f]{16}$//')
    origin=${origin:-unknown}
    ok=""
    for a in "${allowed[@]}"; do
        if [[ $origin == "$a"* ]]; then
            ok=$a
            used[$a]=1
            break
        fi
    done
    if [ -n "$ok" ]; then
        echo "panic-check: allowed  0x$addr $origin -> $callee"
    else
        echo "panic-check: PANIC    0x$addr $origin -> $callee"
        bad=$((bad + 1))
    fi
done
for a in "${allowed[@]}"; do
    [ -n "${used[$a]:-}" ] || echo "panic-check: note: allowlist entry no longer needed: $a"
done
if [ "$bad" -gt 0 ]; then
    echo "panic-check: $bad panic call site(s) outside the allowlist"
    status=1
else
    echo "panic-check: ${#sites[@]} call site(s), all in the allowlist"
fi
exit "$status"
