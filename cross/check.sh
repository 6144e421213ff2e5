#!/usr/bin/env bash
# Checks one cross-built binary:
#
#   cross/check.sh BINARY TARGET
#
# 1. `file` says it is statically linked (static or static-pie: no interpreter, no libc.so);
# 2. it runs (natively for x86_64, under qemu-user for ARM; this machine has no binfmt
#    handlers, so the emulator is named explicitly): `--version`, `--help`,
#    `sim --scenario step` (the real engine on a simulated link), and `demo --fast` if
#    `--help` lists it;
# 3. its size against the budget (WANCTL_SIZE_BUDGET bytes, default 3,000,000: small flash
#    budgets; decimal megabytes, the stricter reading of "3 MB"): fatal above it.
set -euo pipefail

bin=${1:?usage: cross/check.sh BINARY TARGET}
target=${2:?usage: cross/check.sh BINARY TARGET}
budget=${WANCTL_SIZE_BUDGET:-3000000}
# Per command, so a hung emulator fails the check instead of the CI job's clock.
limit=${WANCTL_CHECK_TIMEOUT:-300}

fail() { printf 'check %s: FAIL: %s\n' "$target" "$*" >&2; exit 1; }
say() { printf 'check %s: %s\n' "$target" "$*"; }

[ -f "$bin" ] || fail "no binary at $bin"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

desc=$(file -b "$bin")
case "$desc" in
    *"statically linked"* | *"static-pie linked"*) say "linkage: ${desc%%, BuildID*}" ;;
    *) fail "not static: $desc" ;;
esac

runner=()
pick() {
    local c
    for c in "$@"; do
        if command -v "$c" >/dev/null 2>&1; then
            runner=("$c")
            return
        fi
    done
    fail "none of $* found (apt-get install qemu-user-static)"
}
case "$target" in
    x86_64-*) [ "$(uname -m)" = x86_64 ] || pick qemu-x86_64-static qemu-x86_64 ;;
    aarch64-*) pick qemu-aarch64-static qemu-aarch64 ;;
    armv7-* | arm-*) pick qemu-arm-static qemu-arm ;;
    mipsel-*) pick qemu-mipsel-static qemu-mipsel ;;
    mips-*) pick qemu-mips-static qemu-mips ;;
    *) fail "no runner known for $target" ;;
esac

run() {
    local out
    if ! out=$(timeout "$limit" "${runner[@]}" "$bin" "$@" 2>&1); then
        printf '%s\n' "$out" | tail -n 20 >&2
        fail "wanctl $* exited non-zero"
    fi
    printf '%s\n' "$out"
}

version=$(run --version)
say "--version: $version"
case "$version" in
    wanctl\ *) ;;
    *) fail "--version printed: $version" ;;
esac
# The long form (`wanctl V (REV) TARGET features: …`) must name the target it was built for.
case "$version" in
    *" features: "*) case "$version" in *" $target features: "*) ;; *) fail "--version names another target: $version" ;; esac ;;
esac

help=$(run --help)
say "--help: $(printf '%s\n' "$help" | wc -l) lines"

start=$SECONDS
sim=$(run sim --scenario step)
say "sim --scenario step: ok in $((SECONDS - start)) s ($(printf '%s\n' "$sim" | wc -l) lines of output)"

# `demo` paces itself for people and writes an SVG: run it unpaced, into a temp file.
demo_line=$(printf '%s\n' "$help" | grep -E '^[[:space:]]*wanctl demo\b' || true)
if [ -n "$demo_line" ]; then
    demo=(demo)
    case "$demo_line" in *--fast*) demo+=(--fast) ;; esac
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    case "$demo_line" in *--svg*) demo+=(--svg "$tmp/demo.svg") ;; esac
    start=$SECONDS
    (cd "$tmp" && run "${demo[@]}") >/dev/null
    say "${demo[*]//$tmp\//}: ok in $((SECONDS - start)) s"
fi

size=$(stat -c %s "$bin")
verdict="within budget"
[ "$size" -le "$budget" ] || verdict="OVER budget"
say "size: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.2f", s / 1e6 }') MB), budget $budget bytes: $verdict"
[ "$size" -le "$budget" ] || fail "size $size bytes is over the budget of $budget bytes (cross/README.md: Size)"
say "ok"
