#!/bin/sh
# Copies cross-built binaries into dist/ for release (`make dist` builds them first):
#
#   cross/dist.sh TARGET...   ->  dist/wanctl-<version>-<target>  and  dist/wanctl-<version>-<target>.sha256
#
# Each .sha256 file is in `sha256sum` format with the bare file name, so
# `cd dist && sha256sum -c wanctl-*.sha256` checks the downloads.
set -eu

[ $# -ge 1 ] || { echo "usage: cross/dist.sh TARGET..." >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || { echo "dist: no version in Cargo.toml" >&2; exit 1; }
mkdir -p dist
for target in "$@"; do
    bin=target/cross/$target/release/wanctl
    [ -f "$bin" ] || { echo "dist: $bin missing: run make cross TARGET=$target" >&2; exit 1; }
    name=wanctl-$version-$target
    cp "$bin" "dist/$name.tmp"
    chmod 0755 "dist/$name.tmp"
    mv -f "dist/$name.tmp" "dist/$name"
    (cd dist && sha256sum "$name" >"$name.sha256")
    printf 'dist/%s  %s bytes  sha256 %s\n' "$name" "$(stat -c %s "dist/$name")" "$(cut -d ' ' -f 1 "dist/$name.sha256")"
done
