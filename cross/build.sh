#!/usr/bin/env bash
# Static musl release binaries for small Linux boxes, checked after the build.
#
#   cross/build.sh [TARGET...]          (default: the three targets below; `make cross TARGET=…`)
#   cross/build.sh --test [TARGET...]   the library's unit tests instead, under qemu for ARM
#                                       and MIPS (WANCTL_CROSS_TEST_ARGS="--test integration"
#                                       and WANCTL_CROSS_TEST_FILTER=sys:: pick other tests)
#   cross/build.sh --bloat [TARGET...]  bytes per crate of an unstripped build (cross/bloat.py)
#
# Route (cross/README.md has the reasons): Debian's matched rustc-web/cargo-web/rust-web-src
# rebuild std for the musl target (RUSTC_BOOTSTRAP=1 + -Zbuild-std), and Zig (from PyPI)
# is the C compiler (SQLite, ring's C/asm) and the linker, supplying musl's libc, crt
# objects and libunwind. Everything missing is installed here (needs root for apt-get).
# Output: target/cross/<TARGET>/release/wanctl, a CARGO_TARGET_DIR of its own so normal
# builds in target/ are not disturbed. Each binary is then checked by cross/check.sh.
set -euo pipefail

ALL_TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf
    mipsel-unknown-linux-musl mips-unknown-linux-musl)

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tools="$root/target/cross-tools"
export CARGO_TARGET_DIR="$root/target/cross"

log() { printf 'cross: %s\n' "$*" >&2; }
die() { printf 'cross: error: %s\n' "$*" >&2; exit 1; }

# apt-get as root, or through sudo; otherwise say what to run.
apt_install() {
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "missing packages: $*; run as root: apt-get install $*"
        sudo=(sudo)
    fi
    log "apt-get install $*"
    # Wait for another apt/dpkg run (CI images, unattended-upgrades) instead of failing.
    local lock=(-o DPkg::Lock::Timeout=600)
    "${sudo[@]}" apt-get "${lock[@]}" update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get "${lock[@]}" install -y -qq --no-install-recommends "$@" >/dev/null
}

zig_triple() {
    case "$1" in
        x86_64-unknown-linux-musl) echo x86_64-linux-musl ;;
        aarch64-unknown-linux-musl) echo aarch64-linux-musl ;;
        armv7-unknown-linux-musleabihf) echo arm-linux-musleabihf ;;
        # Rust's MIPS musl targets are soft-float (o32, +soft-float): zig's "eabi" variants.
        mipsel-unknown-linux-musl) echo mipsel-linux-musleabi ;;
        mips-unknown-linux-musl) echo mips-linux-musleabi ;;
        *) die "unsupported target $1 (supported: ${ALL_TARGETS[*]})" ;;
    esac
}

# Extra zig flags: the CPU features Rust's armv7 musleabihf target assumes
# (+v7,+vfp3,-d32,+thumb2,-neon), so C and Rust objects agree on the float ABI; Rust's
# MIPS targets are mips32r2 (zig's musleabi ABI already means soft float).
zig_extra() {
    case "$1" in
        armv7-unknown-linux-musleabihf) echo "-mcpu=generic+v7a+vfp3-d32+thumb2-neon" ;;
        mips*-unknown-linux-musl) echo "-mcpu=mips32r2" ;;
        *) echo "" ;;
    esac
}

ensure_rust() {
    # The three packages must come from one apt command so their versions match: a
    # compiler and std sources of different versions fail to build `core`.
    if [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] && dpkg -s rust-web-src >/dev/null 2>&1; then
        return
    fi
    apt_install rustc-web cargo-web rust-web-src
    if [ ! -x /usr/bin/rustc ] || [ ! -x /usr/bin/cargo ]; then
        die "rustc-web/cargo-web installed but /usr/bin/rustc or /usr/bin/cargo is missing"
    fi
}

ensure_zig() {
    # python3 from PATH (not /usr/bin/python3: Debian's refuses pip installs, PEP 668).
    if ! python3 -c 'import ziglang' >/dev/null 2>&1; then
        log "python3 -m pip install ziglang"
        python3 -m pip install -q ziglang || die "python3 -m pip install ziglang failed"
    fi
    zig="$(python3 -c 'import ziglang, os; print(os.path.dirname(ziglang.__file__))')/zig"
    [ -x "$zig" ] || die "ziglang installed but $zig is not executable"
}

ensure_checkers() {
    command -v file >/dev/null 2>&1 || apt_install file
    # llvm-objcopy (Debian's llvm; any version reads every architecture): MIPS post-link.
    objcopy=$(command -v llvm-objcopy || compgen -c llvm-objcopy- | sort -V | tail -n 1 || true)
    if [ -z "$objcopy" ]; then
        apt_install llvm
        objcopy=$(command -v llvm-objcopy) || die "llvm installed but llvm-objcopy is missing"
    fi
    local t qemu=0
    for t in "${targets[@]}"; do
        case "$t" in
            aarch64-*) command -v qemu-aarch64-static >/dev/null 2>&1 || command -v qemu-aarch64 >/dev/null 2>&1 || qemu=1 ;;
            armv7-*) command -v qemu-arm-static >/dev/null 2>&1 || command -v qemu-arm >/dev/null 2>&1 || qemu=1 ;;
            mipsel-*) command -v qemu-mipsel-static >/dev/null 2>&1 || command -v qemu-mipsel >/dev/null 2>&1 || qemu=1 ;;
            mips-*) command -v qemu-mips-static >/dev/null 2>&1 || command -v qemu-mips >/dev/null 2>&1 || qemu=1 ;;
        esac
    done
    # qemu-user-static and qemu-user ship the same emulators; take whichever apt has.
    [ "$qemu" = 0 ] || apt_install qemu-user-static || apt_install qemu-user
}

# One wrapper per target, used as CC_<target> by cc-rs and as rustc's linker. It drops the
# `--target=<rust triple>` cc-rs adds (zig has its own -target), and adds
# -Wl,--strip-debug to every link exactly once: zig caches its libc per flag set, so the
# same flags on every link build musl once per target instead of twice.
write_wrappers() {
    local t=$1 zt extra postlink=""
    zt=$(zig_triple "$t")
    extra=$(zig_extra "$t")
    # MIPS: LLVM writes a .pdr section (procedure descriptors for old debuggers, never
    # loaded: about 7 % of the file); the linked file is rewritten without it.
    case "$t" in mips*) postlink="$objcopy --remove-section=.pdr" ;; esac
    mkdir -p "$tools"
    cat >"$tools/cc-$t" <<EOF
#!/usr/bin/env bash
# Generated by cross/build.sh: zig cc for $t. Do not edit.
args=()
link=1
out=""
prev=""
for a in "\$@"; do
    case "\$a" in
        --target=*|-Wl,--strip-debug) continue ;;
        -c|-S|-E|-M|-MM) link=0 ;;
    esac
    [ "\$prev" = -o ] && out=\$a
    prev=\$a
    args+=("\$a")
done
# zig's --strip-debug drops the symbol table too; --bloat needs it (WANCTL_CROSS_SYMBOLS=1).
[ "\$link" = 1 ] && [ "\${WANCTL_CROSS_SYMBOLS:-}" != 1 ] && args+=(-Wl,--strip-debug)
postlink="$postlink"
if [ "\$link" = 0 ] || [ -z "\$postlink" ] || [ -z "\$out" ]; then
    exec "$zig" cc -target $zt -fno-sanitize=all $extra "\${args[@]}"
fi
"$zig" cc -target $zt -fno-sanitize=all $extra "\${args[@]}" || exit
\$postlink "\$out"
EOF
    cat >"$tools/ar" <<EOF
#!/bin/sh
# Generated by cross/build.sh: zig ar. Do not edit.
exec "$zig" ar "\$@"
EOF
    chmod 0755 "$tools/cc-$t" "$tools/ar"
}

# rustflags_for TARGET SUBCOMMAND: rustc flags. Debian ships no self-contained crt objects
# (zig supplies them). Rust's MIPS musl targets link dynamically by default (they were
# made for OpenWrt's own toolchain): +crt-static makes them static like the others.
# Release builds abort on panic, so they need no unwind tables (.eh_frame, about 8 % of
# the file); tests unwind, and keep them.
rustflags_for() {
    local f="-C link-self-contained=no"
    case "$1" in
        mips*-unknown-linux-musl) f+=" -C target-feature=+crt-static -C relocation-model=static" ;;
    esac
    [ "$2" = build ] && f+=" -C force-unwind-tables=no"
    echo "$f"
}

# SQLite compile-time options for the shipped binaries (libsqlite3-sys reads
# LIBSQLITE3_FLAGS; a -U after its own -D wins). wanctl's history uses plain tables, WAL,
# VACUUM and PRAGMAs: the extensions libsqlite3-sys enables by default (full-text search,
# R-tree, dbstat, STAT4, soundex, column metadata, extension loading) and the JSON SQL
# functions are unused, so they are left out. cross/README.md has the sizes.
sqlite_flags="-USQLITE_ENABLE_FTS3 -USQLITE_ENABLE_FTS3_PARENTHESIS -USQLITE_ENABLE_FTS5"
sqlite_flags+=" -USQLITE_ENABLE_RTREE -USQLITE_ENABLE_DBSTAT_VTAB -USQLITE_ENABLE_STAT4"
sqlite_flags+=" -USQLITE_SOUNDEX -USQLITE_ENABLE_COLUMN_METADATA -USQLITE_ENABLE_LOAD_EXTENSION"
sqlite_flags+=" -DSQLITE_OMIT_LOAD_EXTENSION -DSQLITE_OMIT_JSON -DSQLITE_OMIT_DEPRECATED"
sqlite_flags+=" -DSQLITE_OMIT_SHARED_CACHE"
sqlite_flags+=" -DSQLITE_OMIT_GET_TABLE -DSQLITE_OMIT_TCL_VARIABLE"

runner_for() {
    case "$1" in
        aarch64-*) command -v qemu-aarch64-static || command -v qemu-aarch64 ;;
        armv7-*) command -v qemu-arm-static || command -v qemu-arm ;;
        mipsel-*) command -v qemu-mipsel-static || command -v qemu-mipsel ;;
        mips-*) command -v qemu-mips-static || command -v qemu-mips ;;
        *) echo "" ;;
    esac
}

# cargo_for TARGET SUBCOMMAND ARGS...: Debian's cargo with the per-target environment.
cargo_for() {
    local t=$1 sub=$2 u U runner flags std_features=()
    shift 2
    # The shipped binaries' std without the `backtrace` feature (gimli, addr2line, object,
    # miniz_oxide, rustc-demangle: symbolising a backtrace, which a stripped binary cannot
    # do anyway; a panic still prints its message) and without `panic-unwind` (the release
    # profile aborts). Tests keep cargo's defaults: the harness needs unwinding.
    [ "$sub" = build ] && std_features=("-Zbuild-std-features=${WANCTL_STD_FEATURES-}")
    u=${t//-/_}
    U=$(printf '%s' "$u" | tr '[:lower:]' '[:upper:]')
    runner=$(runner_for "$t")
    flags=$(rustflags_for "$t" "$sub")
    # MIPS: optimise for size ("z" instead of the profile's "s", about 160 kB less at
    # 89ff7d0) to stay within the 3 MB budget of 16 MB-flash routers; cross/README.md: Size.
    local opt=${WANCTL_OPT_LEVEL-}
    case "$t" in mips*-unknown-linux-musl) opt=${opt:-z} ;; esac
    write_wrappers "$t"
    # Debian's cargo/rustc by full path: rustup's proxies come first in PATH. PATH itself
    # stays as it is, so python3 (and the ziglang package) is still the one found above.
    # RUSTFLAGS from the caller would override the per-target flags: cleared. rustdoc
    # ignores per-target flags, hence RUSTDOCFLAGS for doctests. The runner (tests only)
    # is explicit: this machine has no binfmt handlers for foreign binaries.
    env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u TARGET \
        RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
        "LIBSQLITE3_FLAGS=$sqlite_flags" \
        ${opt:+"CARGO_PROFILE_RELEASE_OPT_LEVEL=$opt"} \
        "CC_$u=$tools/cc-$t" "AR_$u=$tools/ar" \
        "CFLAGS_$u=-fno-asynchronous-unwind-tables -fno-unwind-tables" \
        "CARGO_TARGET_${U}_LINKER=$tools/cc-$t" \
        "CARGO_TARGET_${U}_RUSTFLAGS=$flags" \
        "RUSTDOCFLAGS=$flags" \
        ${runner:+"CARGO_TARGET_${U}_RUNNER=$runner"} \
        /usr/bin/cargo "$sub" --locked -Zbuild-std=std,panic_abort "${std_features[@]}" --target "$t" "$@"
}

build_one() {
    local t=$1 start=$SECONDS
    log "building $t"
    cargo_for "$t" build --release
    log "built $t in $((SECONDS - start)) s"
    bash "$root/cross/check.sh" "$CARGO_TARGET_DIR/$t/release/wanctl" "$t"
}

# --bloat: where the bytes go, per crate (cross/README.md: Size). The same release build
# without `strip`, in target/cross-bloat, attributed by cross/bloat.py from its symbols.
bloat_one() {
    local t=$1 out bin
    out=$root/target/cross-bloat
    log "building $t unstripped in $out"
    # Relink every time: the symbol-keeping linker flag is not part of cargo's fingerprint.
    rm -f "$out/$t/release/wanctl" "$out/$t/release/deps/wanctl-"*
    CARGO_TARGET_DIR=$out CARGO_PROFILE_RELEASE_STRIP=none WANCTL_CROSS_SYMBOLS=1 cargo_for "$t" build --release
    bin=$out/$t/release/wanctl
    local archives=()
    local a
    a=$(find "$out/$t/release/build" -path '*libsqlite3-sys-*/out/*' -name 'libsqlite3.a' | head -n 1)
    [ -z "$a" ] || archives+=(--c-archive "SQLite (C)=$a")
    a=$(find "$out/$t/release/build" -path '*ring-*/out/*' -name 'libring_core_*.a' ! -name '*test*' | head -n 1)
    [ -z "$a" ] || archives+=(--c-archive "ring (C, asm)=$a")
    log "$t: $(stat -c %s "$bin") bytes unstripped"
    python3 "$root/cross/bloat.py" "$bin" --nm "${objcopy/objcopy/nm}" "${archives[@]}"
}

# --test: the library's unit tests for each target, under qemu for ARM (not part of
# `make cross`; a few minutes per target). Catches 32-bit and ABI differences
# (time_t is i32 in the libc crate's armv7 musl bindings) that host tests cannot see.
test_one() {
    local t=$1 start=$SECONDS
    log "testing $t (${WANCTL_CROSS_TEST_ARGS:---lib}${filter:+ matching $filter})"
    # shellcheck disable=SC2086 # WANCTL_CROSS_TEST_ARGS is a list of cargo arguments
    cargo_for "$t" test ${WANCTL_CROSS_TEST_ARGS:---lib} -- ${filter:+"$filter"}
    log "tested $t in $((SECONDS - start)) s"
}

mode="build"
filter=${WANCTL_CROSS_TEST_FILTER:-}
case "${1:-}" in
    --test) mode="test"; shift ;;
    --bloat) mode="bloat"; shift ;;
esac
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do zig_triple "$t" >/dev/null; done

total=$SECONDS
ensure_rust
ensure_zig
ensure_checkers
log "toolchain: $(/usr/bin/rustc --version), zig $("$zig" version)"
for t in "${targets[@]}"; do
    "${mode}_one" "$t"
done
log "done: $mode ${targets[*]} in $((SECONDS - total)) s"
