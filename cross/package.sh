#!/usr/bin/env bash
# Packages from the static binaries (`make packages` builds them first):
#
#   cross/package.sh TARGET...
#
#   x86_64-unknown-linux-musl       dist/wanctl_V-1_amd64.deb, wanctl_V-r1_x86_64.ipk,
#                                   wanctl-V-r1-x86_64.openwrt.apk, wanctl-V-r0-x86_64.alpine.apk
#   aarch64-unknown-linux-musl      _arm64.deb, _aarch64_cortex-a53.ipk/.openwrt.apk, -aarch64.alpine.apk
#   armv7-unknown-linux-musleabihf  _armhf.deb, _arm_cortex-a7_neon-vfpv4.ipk/.openwrt.apk, -armv7.alpine.apk
#   mipsel-unknown-linux-musl       _mipsel_24kc.ipk/.openwrt.apk
#   mips-unknown-linux-musl         _mips_24kc.ipk/.openwrt.apk
#
# .deb: systemd units, the `wanctl` user made in postinst, conffiles (dpkg-deb).
# .ipk: OpenWrt's opkg format (a tar.gz of debian-binary, control.tar.gz, data.tar.gz) with
#       the procd script. WANCTL_OPENWRT_ARCH_<family> (x86_64, aarch64, armv7, mipsel, mips)
#       names another OpenWrt architecture; cross/README.md lists the compatible ones.
# .openwrt.apk: the same for OpenWrt's apk-tools 3 (OpenWrt 25 and snapshots), ADB format
#       (cross/apk.py build3), unsigned.
# .alpine.apk: Alpine's apk v2 format (cross/apk.py), unsigned, with the OpenRC script.
# Reproducible: every timestamp is SOURCE_DATE_EPOCH (default: the last commit's time),
# owners root:root, names sorted, gzip without names or times. Same inputs, same bytes.
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: cross/package.sh TARGET..." >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || { echo "package: no version in Cargo.toml" >&2; exit 1; }
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 1700000000)
fi
export SOURCE_DATE_EPOCH
maintainer=${WANCTL_MAINTAINER:-"wanctl packagers <packaging@wanctl.invalid>"}
homepage=https://github.com/kevinb361/wanctl
summary="adaptive CAKE bandwidth controller for MikroTik RouterOS"
# Debian's extended description: one space before each line, " ." for an empty one.
long=" Measures latency to reflectors every 50 ms and sets the CAKE queue rates on
 a MikroTik RouterOS router (REST or ssh), so a WAN stays fast without
 bufferbloat. Optionally steers latency-sensitive traffic to a second WAN while
 the first is congested. One static binary; Prometheus metrics, a health
 endpoint and an SQLite history."
out=$root/dist
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

die() { printf 'package: error: %s\n' "$*" >&2; exit 1; }

# family TARGET: x86_64, aarch64, armv7, mipsel or mips.
family() {
    case "$1" in
        x86_64-*) echo x86_64 ;;
        aarch64-*) echo aarch64 ;;
        armv7-*) echo armv7 ;;
        mipsel-*) echo mipsel ;;
        mips-*) echo mips ;;
        *) die "no packages for $1" ;;
    esac
}

deb_arch() {
    case "$1" in x86_64) echo amd64 ;; aarch64) echo arm64 ;; armv7) echo armhf ;; *) echo "" ;; esac
}

# The OpenWrt architecture an .ipk is labelled with (opkg refuses other labels): the most
# common boards' by default. The binary is static, so every label of the family with the
# same CPU floor works (cross/README.md): override per family.
openwrt_arch() {
    local var="WANCTL_OPENWRT_ARCH_$1"
    if [ -n "${!var:-}" ]; then
        echo "${!var}"
        return
    fi
    case "$1" in
        x86_64) echo x86_64 ;;
        aarch64) echo aarch64_cortex-a53 ;;
        armv7) echo arm_cortex-a7_neon-vfpv4 ;;
        mipsel) echo mipsel_24kc ;;
        mips) echo mips_24kc ;;
    esac
}

alpine_arch() {
    case "$1" in x86_64) echo x86_64 ;; aarch64) echo aarch64 ;; armv7) echo armv7 ;; *) echo "" ;; esac
}

# Fixed times and modes on a staged tree (the umask must not leak into packages).
normalize() {
    find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
}

# reproducible_tar DIR OUT.tar.gz ENTRY...: tar.gz of ENTRY... (relative to DIR).
reproducible_tar() {
    local dir=$1 dest=$2
    shift 2
    tar -C "$dir" --sort=name --format=gnu --owner=0 --group=0 --numeric-owner \
        --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime -cf - "$@" | gzip -9n >"$dest"
}

# stage_common DIR BINARY: the binary, its links and the example configs.
stage_common() {
    local d=$1 bin=$2 cfg
    install -d -m 0755 "$d/usr/bin" "$d/etc/wanctl"
    install -m 0755 "$bin" "$d/usr/bin/wanctl"
    ln -s wanctl "$d/usr/bin/wanctl-steering"
    ln -s wanctl "$d/usr/bin/wanctl-history"
    ln -s wanctl "$d/usr/bin/wanctl-calibrate"
    ln -s wanctl "$d/usr/bin/wanctl-check-router"
    for cfg in config/*.yaml; do
        install -m 0644 "$cfg" "$d/etc/wanctl/$(basename "$cfg").example"
    done
}

# conffiles DIR: the example configs and the logrotate policy, as absolute paths (the
# package manager keeps a changed one on upgrade). Init scripts are not conffiles.
conffiles() {
    local dir
    for dir in etc/wanctl etc/logrotate.d; do
        if [ -d "$1/$dir" ]; then (cd "$1" && find "$dir" -type f); fi
    done | LC_ALL=C sort | sed 's|^|/|'

}

installed_kib() {
    du -s -k --apparent-size "$1" | cut -f 1
}

build_deb() {
    local fam=$1 bin=$2 arch d name
    arch=$(deb_arch "$fam")
    d=$work/deb-$fam
    name=wanctl_${version}-1_${arch}.deb
    stage_common "$d" "$bin"
    install -d -m 0755 "$d/usr/lib/systemd/system" "$d/etc/logrotate.d" "$d/usr/share/doc/wanctl" \
        "$d/usr/share/lintian/overrides" "$d/DEBIAN"
    install -m 0644 init/wanctl@.service init/wanctl-steering.service "$d/usr/lib/systemd/system/"
    install -m 0644 init/logrotate-wanctl "$d/etc/logrotate.d/wanctl"
    {
        echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
        echo "Upstream-Name: wanctl"
        echo "Source: $homepage"
        echo
        echo "Files: *"
        echo "Copyright: $(date -u -d "@$SOURCE_DATE_EPOCH" +%Y) the wanctl authors"
        echo "License: MIT or Apache-2.0"
        echo " Dual-licensed: MIT, or the Apache License 2.0 (/usr/share/common-licenses/Apache-2.0)."
    } >"$d/usr/share/doc/wanctl/copyright"
    {
        echo "wanctl (${version}-1) unstable; urgency=medium"
        echo
        echo "  * Package built from the static musl binary (cross/package.sh)."
        echo
        echo " -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
    } | gzip -9n >"$d/usr/share/doc/wanctl/changelog.Debian.gz"
    # What lintian reports and is meant so: the binary is static on purpose (one file,
    # no libc dependency; its YAML parser is a Rust port of libyaml); the maintainer
    # scripts call systemctl with a glob over the template's instances (wanctl@*.service),
    # which deb-systemd-invoke does not expand; the documentation is `wanctl --help` and
    # the README, not manual pages; it is not an upload to Debian (no ITP bug to close).
    {
        echo "wanctl: statically-linked-binary [usr/bin/wanctl]"
        echo "wanctl: embedded-library libyaml [usr/bin/wanctl]"
        echo "wanctl: maintainer-script-calls-systemctl *"
        echo "wanctl: no-manual-page *"
        echo "wanctl: initial-upload-closes-no-bugs *"
    } >"$d/usr/share/lintian/overrides/wanctl"
    chmod 0644 "$d/usr/share/doc/wanctl/copyright" "$d/usr/share/doc/wanctl/changelog.Debian.gz" \
        "$d/usr/share/lintian/overrides/wanctl"
    {
        echo "Package: wanctl"
        echo "Version: ${version}-1"
        echo "Architecture: $arch"
        echo "Maintainer: $maintainer"
        echo "Installed-Size: $(installed_kib "$d")"
        echo "Depends: adduser"
        echo "Section: net"
        echo "Priority: optional"
        echo "Homepage: $homepage"
        echo "Description: $summary"
        echo "$long"
    } >"$d/DEBIAN/control"
    conffiles "$d" >"$d/DEBIAN/conffiles"
    install -m 0755 cross/pkg/deb-postinst "$d/DEBIAN/postinst"
    install -m 0755 cross/pkg/deb-prerm "$d/DEBIAN/prerm"
    install -m 0755 cross/pkg/deb-postrm "$d/DEBIAN/postrm"
    (cd "$d" && find usr -type f | LC_ALL=C sort | xargs md5sum) >"$d/DEBIAN/md5sums"
    chmod 0644 "$d/DEBIAN/control" "$d/DEBIAN/conffiles" "$d/DEBIAN/md5sums"
    normalize "$d"
    dpkg-deb --root-owner-group -Zxz -z9 --build "$d" "$out/$name" >/dev/null
    echo "$name"
}

build_ipk() {
    local fam=$1 bin=$2 arch d c name
    arch=$(openwrt_arch "$fam")
    d=$work/ipk-$fam/data
    c=$work/ipk-$fam/control
    name=wanctl_${version}-r1_${arch}.ipk
    stage_common "$d" "$bin"
    install -d -m 0755 "$d/etc/init.d" "$c"
    install -m 0755 init/wanctl.procd "$d/etc/init.d/wanctl"
    {
        echo "Package: wanctl"
        echo "Version: ${version}-r1"
        echo "Source: wanctl"
        echo "SourceName: wanctl"
        echo "License: MIT OR Apache-2.0"
        echo "Section: net"
        echo "URL: $homepage"
        echo "Maintainer: $maintainer"
        echo "Architecture: $arch"
        echo "Installed-Size: $(du -s -b --apparent-size "$d" | cut -f 1)"
        echo "Description: wanctl, an $summary."
        echo "$long"
    } >"$c/control"
    conffiles "$d" >"$c/conffiles"
    install -m 0755 cross/pkg/ipk-postinst "$c/postinst"
    install -m 0755 cross/pkg/ipk-prerm "$c/prerm"
    chmod 0644 "$c/control" "$c/conffiles"
    printf '2.0\n' >"$work/ipk-$fam/debian-binary"
    normalize "$work/ipk-$fam"
    reproducible_tar "$d" "$work/ipk-$fam/data.tar.gz" .
    reproducible_tar "$c" "$work/ipk-$fam/control.tar.gz" .
    touch -d "@$SOURCE_DATE_EPOCH" "$work/ipk-$fam/data.tar.gz" "$work/ipk-$fam/control.tar.gz"
    # OpenWrt's own ipkg-build writes this order, as a gzipped tar (opkg also reads ar).
    reproducible_tar "$work/ipk-$fam" "$out/$name" ./debian-binary ./data.tar.gz ./control.tar.gz
    echo "$name"
}

build_openwrt_apk() {
    local fam=$1 bin=$2 arch d meta name f
    arch=$(openwrt_arch "$fam")
    d=$work/owrt-apk-$fam
    name=wanctl-${version}-r1-${arch}.openwrt.apk
    stage_common "$d" "$bin"
    install -d -m 0755 "$d/etc/init.d" "$d/lib/apk/packages"
    install -m 0755 init/wanctl.procd "$d/etc/init.d/wanctl"
    # As OpenWrt's own apk packages: the file list, and the conffiles (kept by sysupgrade)
    # with their SHA-256 (a changed one is the user's), in /lib/apk/packages/.
    meta=$d/lib/apk/packages/wanctl
    (cd "$d" && find . \( -type f -o -type l \) ! -path './lib/apk/*' | sed 's|^\.||' | LC_ALL=C sort) >"$meta.list"
    conffiles "$d" >"$meta.conffiles"
    while IFS= read -r f; do
        printf '%s %s\n' "$f" "$(sha256sum <"$d$f" | cut -d ' ' -f 1)"
    done <"$meta.conffiles" >"$meta.conffiles_static"
    chmod 0644 "$meta.list" "$meta.conffiles" "$meta.conffiles_static"
    normalize "$d"
    python3 cross/apk.py build3 --root "$d" --out "$out/$name" --name wanctl \
        --version "${version}-r1" --arch "$arch" --description "wanctl, an $summary." \
        --url "$homepage" --license "MIT OR Apache-2.0" --packager "$maintainer" \
        --script post-install=cross/pkg/ipk-postinst --script post-upgrade=cross/pkg/ipk-postinst \
        --script pre-deinstall=cross/pkg/ipk-prerm
    echo "$name"
}

build_alpine() {
    local fam=$1 bin=$2 arch d name
    arch=$(alpine_arch "$fam")
    d=$work/alpine-$fam
    name=wanctl-${version}-r0-${arch}.alpine.apk
    stage_common "$d" "$bin"
    install -d -m 0755 "$d/etc/init.d" "$d/etc/logrotate.d"
    install -m 0755 init/wanctl.openrc "$d/etc/init.d/wanctl"
    install -m 0644 init/logrotate-wanctl "$d/etc/logrotate.d/wanctl"
    normalize "$d"
    python3 cross/apk.py build --root "$d" --out "$out/$name" --name wanctl \
        --version "${version}-r0" --arch "$arch" --description "$summary" --url "$homepage" \
        --license "MIT OR Apache-2.0" --packager "$maintainer" \
        --pre-install cross/pkg/apk-pre-install
    echo "$name"
}

for target in "$@"; do
    bin=target/cross/$target/release/wanctl
    [ -f "$bin" ] || die "$bin missing: run make cross TARGET=$target"
    fam=$(family "$target")
    made=()
    [ -z "$(deb_arch "$fam")" ] || made+=("$(build_deb "$fam" "$bin")")
    made+=("$(build_ipk "$fam" "$bin")" "$(build_openwrt_apk "$fam" "$bin")")
    [ -z "$(alpine_arch "$fam")" ] || made+=("$(build_alpine "$fam" "$bin")")
    for p in "${made[@]}"; do
        (cd "$out" && sha256sum "$p" >"$p.sha256")
        printf 'dist/%s  %s bytes\n' "$p" "$(stat -c %s "$out/$p")"
    done
done
