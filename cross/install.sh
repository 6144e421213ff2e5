#!/bin/sh
# Installs wanctl into a file tree (`make install` calls this):
#
#   cross/install.sh DESTDIR PREFIX BINARY      e.g. cross/install.sh "" /usr/local target/release/wanctl
#
#   $DESTDIR$PREFIX/bin/wanctl                        the binary
#   $DESTDIR$PREFIX/bin/wanctl-steering, -history, -calibrate, -check-router   links to it (it dispatches on its name)
#   $DESTDIR/etc/wanctl/<name>.yaml.example           the example configs from config/
#   $DESTDIR$PREFIX/lib/systemd/system/               wanctl@.service, wanctl-steering.service
#   $DESTDIR/etc/logrotate.d/wanctl                   the logrotate policy
#   $DESTDIR$PREFIX/share/wanctl/init/                wanctl.openrc, wanctl.procd (copy to /etc/init.d)
#
# The units and init scripts name /usr/bin/wanctl; they are installed with $PREFIX/bin
# instead. Existing configs are never touched (only *.example files are written). Creating
# the `wanctl` user and enabling services is left to the administrator (README: Install).
set -eu

[ $# -eq 3 ] || { echo "usage: cross/install.sh DESTDIR PREFIX BINARY" >&2; exit 2; }
destdir=$1
prefix=${2%/}
binary=$3
src=$(cd "$(dirname "$0")/.." && pwd)

[ -f "$binary" ] || { echo "install: no binary at $binary (run make build, or pass BINARY=)" >&2; exit 1; }
case "$prefix" in
    /*) ;;
    *) echo "install: PREFIX must be an absolute path, got '$prefix'" >&2; exit 2 ;;
esac

bindir=$destdir$prefix/bin
unitdir=$destdir$prefix/lib/systemd/system
initdir=$destdir$prefix/share/wanctl/init
etcdir=$destdir/etc/wanctl

# Copies $1 to $2 with mode $3, pointing /usr/bin/wanctl at $prefix/bin/wanctl.
install_edited() {
    sed "s|/usr/bin/wanctl|$prefix/bin/wanctl|g" "$1" >"$2.tmp"
    chmod "$3" "$2.tmp"
    mv -f "$2.tmp" "$2"
}

install -d -m 0755 "$bindir" "$unitdir" "$initdir" "$etcdir" "$destdir/etc/logrotate.d"
install -m 0755 "$binary" "$bindir/wanctl"
for link in wanctl-steering wanctl-history wanctl-calibrate wanctl-check-router; do
    ln -sf wanctl "$bindir/$link"
done

for cfg in "$src"/config/*.yaml; do
    [ -f "$cfg" ] || continue
    install -m 0644 "$cfg" "$etcdir/$(basename "$cfg").example"
done

install_edited "$src/init/wanctl@.service" "$unitdir/wanctl@.service" 0644
install_edited "$src/init/wanctl-steering.service" "$unitdir/wanctl-steering.service" 0644
install_edited "$src/init/wanctl.openrc" "$initdir/wanctl.openrc" 0755
install_edited "$src/init/wanctl.procd" "$initdir/wanctl.procd" 0755
install -m 0644 "$src/init/logrotate-wanctl" "$destdir/etc/logrotate.d/wanctl"

echo "installed wanctl into ${destdir:-/}: $prefix/bin, /etc/wanctl (*.example), $prefix/lib/systemd/system, $prefix/share/wanctl/init, /etc/logrotate.d/wanctl"
