#!/usr/bin/env bash
# Checks the packages cross/package.sh wrote for TARGET... by their contents and metadata,
# and with the real tools where this machine has them:
#
#   cross/package-check.sh [--install] TARGET...
#
# every package: the packaged binary is the checked build (same SHA-256), the links, the
#   init files and the example configs are there with their modes, the conffiles exist;
# .deb: dpkg-deb --info/--contents, lintian (when installed) with no error or warning;
#   with --install and a package for this machine's architecture: dpkg -i, the `wanctl`
#   user, `wanctl --version`, systemd-analyze verify of the installed units, dpkg --purge,
#   and nothing left behind (needs root; the user is removed if this run created it);
# .ipk: the outer tar.gz holds debian-binary (2.0), data.tar.gz and control.tar.gz, the
#   control fields and scripts (sh -n);
# .openwrt.apk: cross/apk.py check3 (ADB blocks and tree, package id, DATA blocks against
#   the files' sizes and SHA-256);
# .alpine.apk: cross/apk.py check (gzip members, .PKGINFO, datahash, per-file SHA-1).
# Prints one line per package: `PKG BYTES ok (checks)`, then a table of every target's
# binary and packages; exits non-zero on the first failure.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
install=0
if [ "${1:-}" = --install ]; then
    install=1
    shift
fi
[ $# -ge 1 ] || { echo "usage: cross/package-check.sh [--install] TARGET..." >&2; exit 2; }
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() { printf 'package-check: FAIL: %s\n' "$*" >&2; exit 1; }

# need FILE LIST-FILE: FILE (as listed by tar, ./ stripped) is in the list.
need() {
    grep -qxF "$1" "$2" || fail "$3 lacks $1"
}

# tree_checks DIR PKG INIT: the common payload, unpacked in DIR.
tree_checks() {
    local d=$1 pkg=$2 init=$3 cfg
    [ -f "$d/usr/bin/wanctl" ] || fail "$pkg: no usr/bin/wanctl"
    [ "$(sha256sum <"$d/usr/bin/wanctl")" = "$binsum" ] || fail "$pkg: usr/bin/wanctl is not $bin"
    [ "$(stat -c %a "$d/usr/bin/wanctl")" = 755 ] || fail "$pkg: usr/bin/wanctl mode"
    for link in wanctl-steering wanctl-history; do
        [ "$(readlink "$d/usr/bin/$link")" = wanctl ] || fail "$pkg: usr/bin/$link is not a link to wanctl"
    done
    for cfg in config/*.yaml; do
        cmp -s "$cfg" "$d/etc/wanctl/$(basename "$cfg").example" || fail "$pkg: etc/wanctl/$(basename "$cfg").example"
    done
    if [ -n "$init" ]; then
        cmp -s "$init" "$d/etc/init.d/wanctl" || fail "$pkg: etc/init.d/wanctl is not $init"
        [ "$(stat -c %a "$d/etc/init.d/wanctl")" = 755 ] || fail "$pkg: etc/init.d/wanctl mode"
    fi
}

# field FILE NAME: the value of a control field.
field() {
    sed -n "s/^$2: //p" "$1" | head -n 1
}

check_conffiles() {
    local list=$1 d=$2 pkg=$3 f
    [ -s "$list" ] || fail "$pkg: no conffiles"
    while IFS= read -r f; do
        [ -f "$d$f" ] || fail "$pkg: conffile $f is not in the package"
    done <"$list"
}

check_deb() {
    local pkg=$1 arch=$2 checks="dpkg-deb"
    local d=$tmp/deb-$arch
    dpkg-deb --info "dist/$pkg" >"$tmp/info" || fail "$pkg: dpkg-deb --info"
    dpkg-deb --contents "dist/$pkg" >/dev/null || fail "$pkg: dpkg-deb --contents"
    mkdir -p "$d/DEBIAN"
    dpkg-deb --extract "dist/$pkg" "$d"
    dpkg-deb --control "dist/$pkg" "$d/DEBIAN"
    [ "$(field "$d/DEBIAN/control" Package)" = wanctl ] || fail "$pkg: Package"
    [ "$(field "$d/DEBIAN/control" Version)" = "$version-1" ] || fail "$pkg: Version"
    [ "$(field "$d/DEBIAN/control" Architecture)" = "$arch" ] || fail "$pkg: Architecture"
    tree_checks "$d" "$pkg" ""
    for unit in wanctl@.service wanctl-steering.service; do
        cmp -s "init/$unit" "$d/usr/lib/systemd/system/$unit" || fail "$pkg: $unit"
    done
    cmp -s init/logrotate-wanctl "$d/etc/logrotate.d/wanctl" || fail "$pkg: logrotate policy"
    check_conffiles "$d/DEBIAN/conffiles" "$d" "$pkg"
    need /etc/logrotate.d/wanctl "$d/DEBIAN/conffiles" "$pkg conffiles"
    for s in postinst prerm postrm; do
        [ -x "$d/DEBIAN/$s" ] || fail "$pkg: DEBIAN/$s"
        sh -n "$d/DEBIAN/$s"
    done
    grep -q 'adduser --system' "$d/DEBIAN/postinst" || fail "$pkg: postinst creates no system user"
    (cd "$d" && md5sum --quiet -c DEBIAN/md5sums) || fail "$pkg: md5sums"
    if command -v lintian >/dev/null 2>&1; then
        if ! lintian --fail-on error,warning --tag-display-limit 0 "dist/$pkg" >"$tmp/lintian" 2>&1; then
            grep -v 'root privileges' "$tmp/lintian" >&2
            fail "$pkg: lintian"
        fi
        checks+=", lintian"
    fi
    if [ "$install" = 1 ] && [ "$arch" = "$(dpkg --print-architecture)" ]; then
        install_deb "$pkg"
        checks+=", dpkg -i/--version/--purge"
    fi
    result "$pkg" "$checks"
}

# dpkg -i on this machine, then purge: runs as root in CI, where systemd is not PID 1, so
# the units are verified with systemd-analyze instead of started.
install_deb() {
    local pkg=$1 had_user=0 out
    [ "$(id -u)" = 0 ] || fail "--install needs root"
    if dpkg -s wanctl >/dev/null 2>&1; then
        fail "a wanctl package is already installed here; remove it first"
    fi
    getent passwd wanctl >/dev/null && had_user=1
    dpkg -i "dist/$pkg" >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log" >&2; fail "dpkg -i $pkg"; }
    out=$(/usr/bin/wanctl --version) || fail "installed wanctl --version"
    printf 'package-check: installed %s: %s\n' "$pkg" "$out"
    getent passwd wanctl >/dev/null || fail "postinst did not create the wanctl user"
    [ "$(stat -c %U /var/lib/wanctl)" = wanctl ] || fail "/var/lib/wanctl is not owned by wanctl"
    /usr/bin/wanctl-steering --version >/dev/null || fail "installed wanctl-steering"
    dpkg-query -W -f='${Conffiles}\n' wanctl | grep -q '/etc/wanctl/cable.yaml.example' ||
        fail "dpkg does not list the conffiles"
    if command -v systemd-analyze >/dev/null 2>&1; then
        # As in .ci/packaging: any output is a failure (verify only warns on bad keys).
        out=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no \
            /usr/lib/systemd/system/wanctl@.service /usr/lib/systemd/system/wanctl-steering.service 2>&1) ||
            { printf '%s\n' "$out" >&2; fail "systemd-analyze verify of the installed units"; }
        [ -z "$out" ] || { printf '%s\n' "$out" >&2; fail "systemd-analyze verify of the installed units"; }
        printf 'package-check: systemd-analyze verify of the installed units: ok (systemd is %s)\n' \
            "$([ -d /run/systemd/system ] && echo running || echo 'not PID 1 here')"
    fi
    dpkg --purge wanctl >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log" >&2; fail "dpkg --purge wanctl"; }
    for p in /usr/bin/wanctl /usr/lib/systemd/system/wanctl@.service /etc/wanctl /var/lib/wanctl /var/log/wanctl; do
        [ ! -e "$p" ] || fail "$p left behind after dpkg --purge"
    done
    if [ "$had_user" = 0 ]; then
        userdel wanctl 2>/dev/null || true
        groupdel wanctl 2>/dev/null || true
    fi
}

check_ipk() {
    local pkg=$1 d=$tmp/ipk-$2
    mkdir -p "$d/outer" "$d/data" "$d/control"
    tar -tzf "dist/$pkg" >"$d/outer.list" || fail "$pkg: not a tar.gz"
    [ "$(tr '\n' ' ' <"$d/outer.list")" = "./debian-binary ./data.tar.gz ./control.tar.gz " ] ||
        fail "$pkg: members $(tr '\n' ' ' <"$d/outer.list")"
    tar -xzf "dist/$pkg" -C "$d/outer"
    [ "$(cat "$d/outer/debian-binary")" = 2.0 ] || fail "$pkg: debian-binary"
    tar -xzf "$d/outer/data.tar.gz" -C "$d/data"
    tar -xzf "$d/outer/control.tar.gz" -C "$d/control"
    tar -tzvf "$d/outer/data.tar.gz" | awk '{print $2}' | sort -u >"$d/owners"
    [ "$(cat "$d/owners")" = 0/0 ] || fail "$pkg: owners $(cat "$d/owners")"
    local c=$d/control/control
    [ "$(field "$c" Package)" = wanctl ] || fail "$pkg: Package"
    [ "$(field "$c" Version)" = "$version-r1" ] || fail "$pkg: Version"
    case "$pkg" in *"_$(field "$c" Architecture).ipk") ;; *) fail "$pkg: Architecture $(field "$c" Architecture)" ;; esac
    [ "$(field "$c" Installed-Size)" -gt 0 ] || fail "$pkg: Installed-Size"
    tree_checks "$d/data" "$pkg" init/wanctl.procd
    check_conffiles "$d/control/conffiles" "$d/data" "$pkg"
    for s in postinst prerm; do
        [ -x "$d/control/$s" ] || fail "$pkg: $s"
        sh -n "$d/control/$s"
    done
    grep -q '/etc/init.d/wanctl enable' "$d/control/postinst" || fail "$pkg: postinst does not enable the service"
    if grep -qE 'useradd|adduser|systemctl' "$d/control/postinst" "$d/control/prerm"; then
        fail "$pkg: router scripts must not use useradd/adduser/systemctl"
    fi
    result "$pkg" "opkg layout, control, conffiles, scripts"
}

check_openwrt_apk() {
    local pkg=$1
    python3 cross/apk.py check3 "dist/$pkg" --require /usr/bin/wanctl --require /usr/bin/wanctl-steering \
        --require /etc/init.d/wanctl --require /etc/wanctl/cable.yaml.example \
        --require /lib/apk/packages/wanctl.conffiles --expect "/usr/bin/wanctl=${binsum%% *}" >/dev/null ||
        fail "$pkg: cross/apk.py check3"
    result "$pkg" "apk v3 ADB layout, info, package id, file SHA-256"
}

check_alpine() {
    local pkg=$1 d=$tmp/apk-$2
    python3 cross/apk.py check "dist/$pkg" --require /usr/bin/wanctl --require /etc/init.d/wanctl \
        --require /etc/wanctl/cable.yaml.example >/dev/null || fail "$pkg: cross/apk.py check"
    mkdir -p "$d"
    # GNU tar reads the concatenated gzip members as one archive, as apk does.
    tar -xzf "dist/$pkg" -C "$d" 2>/dev/null
    tree_checks "$d" "$pkg" init/wanctl.openrc
    grep -q 'adduser -S' "$d/.pre-install" || fail "$pkg: .pre-install creates no user"
    sh -n "$d/.pre-install"
    result "$pkg" "apk v2 layout, .PKGINFO, datahash, checksums"
}

rows=()
result() {
    printf '%s %s ok (%s)\n' "$1" "$(stat -c %s "dist/$1")" "$2"
    rows+=("$target|$(stat -c %s "$bin")|$1|$(stat -c %s "dist/$1")|$2")
}

# The summary table: target, binary size, each package with its size and checks.
table() {
    local row t b p s c last=""
    printf '\n%-32s %9s  %-52s %9s  %s\n' target binary package bytes "checks passed"
    for row in "${rows[@]}"; do
        IFS='|' read -r t b p s c <<<"$row"
        if [ "$t" = "$last" ]; then
            printf '%-32s %9s  %-52s %9s  %s\n' "" "" "$p" "$s" "$c"
        else
            printf '%-32s %9s  %-52s %9s  %s\n' "$t" "$b" "$p" "$s" "$c"
        fi
        last=$t
    done
    printf '(binary: bytes, static, each <= %s bytes and run under qemu by cross/check.sh)\n' "${WANCTL_SIZE_BUDGET:-3000000}"
}

for target in "$@"; do
    bin=target/cross/$target/release/wanctl
    [ -f "$bin" ] || fail "$bin missing"
    binsum=$(sha256sum <"$bin")
    found=0
    for p in dist/*.deb dist/*.ipk dist/*.openwrt.apk dist/*.alpine.apk; do
        [ -f "$p" ] || continue
        pkg=${p#dist/}
        case "$target:$pkg" in
            x86_64-*:wanctl_"$version"-1_amd64.deb) check_deb "$pkg" amd64 ;;
            aarch64-*:wanctl_"$version"-1_arm64.deb) check_deb "$pkg" arm64 ;;
            armv7-*:wanctl_"$version"-1_armhf.deb) check_deb "$pkg" armhf ;;
            x86_64-*:wanctl_"$version"-r1_x86_64.ipk) check_ipk "$pkg" x86_64 ;;
            aarch64-*:wanctl_"$version"-r1_aarch64*.ipk) check_ipk "$pkg" aarch64 ;;
            armv7-*:wanctl_"$version"-r1_arm_*.ipk) check_ipk "$pkg" armv7 ;;
            mipsel-*:wanctl_"$version"-r1_mipsel*.ipk) check_ipk "$pkg" mipsel ;;
            mips-*:wanctl_"$version"-r1_mips_*.ipk) check_ipk "$pkg" mips ;;
            x86_64-*:wanctl-"$version"-r1-x86_64.openwrt.apk | aarch64-*:wanctl-"$version"-r1-aarch64*.openwrt.apk | \
                armv7-*:wanctl-"$version"-r1-arm_*.openwrt.apk | mipsel-*:wanctl-"$version"-r1-mipsel*.openwrt.apk | \
                mips-*:wanctl-"$version"-r1-mips_*.openwrt.apk)
                check_openwrt_apk "$pkg" ;;
            x86_64-*:wanctl-"$version"-r0-x86_64.alpine.apk) check_alpine "$pkg" x86_64 ;;
            aarch64-*:wanctl-"$version"-r0-aarch64.alpine.apk) check_alpine "$pkg" aarch64 ;;
            armv7-*:wanctl-"$version"-r0-armv7.alpine.apk) check_alpine "$pkg" armv7 ;;
            *) continue ;;
        esac
        found=$((found + 1))
    done
    [ "$found" -gt 0 ] || fail "no packages for $target in dist/ (make packages TARGET=$target)"
done
table
