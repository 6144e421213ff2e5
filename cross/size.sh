#!/bin/sh
# `make size`: the stripped release binary for this machine, with the default features
# (TLS) and with --no-default-features (plain HTTP only), against the size budget
# (WANCTL_SIZE_BUDGET bytes, default 6 MiB; the profile strips, so this is the shipped size).
# Both builds share target/release: cargo keeps both feature sets' artifacts, so switching
# back and forth only relinks. The default build runs last and stays in target/release.
# For the cross targets, cross/check.sh prints the same line per target.
set -eu

cd "$(dirname "$0")/.."
cargo=${CARGO:-cargo}
budget=${WANCTL_SIZE_BUDGET:-6291456}
bin=target/release/wanctl

report() {
    size=$(stat -c %s "$bin")
    verdict="within budget"
    [ "$size" -le "$budget" ] || verdict="OVER budget"
    awk -v label="$1" -v s="$size" -v b="$budget" -v v="$verdict" \
        'BEGIN { printf "wanctl release binary (%s): %d bytes (%.2f MiB), budget %.2f MiB: %s\n", label, s, s / 1048576, b / 1048576, v }'
    # Printed above; fatal only far over budget (a dependency or profile mistake).
    [ "$size" -le $((2 * budget)) ] || { echo "size: more than twice the budget" >&2; exit 1; }
}

$cargo build --release --quiet --no-default-features
notls=$(report "no-default-features, no TLS") || { echo "$notls"; exit 1; }
$cargo build --release --quiet
echo "$notls"
report "default features: tls"
echo "(host target $(rustc -vV 2>/dev/null | sed -n 's/^host: //p'); static musl sizes: make cross)"
