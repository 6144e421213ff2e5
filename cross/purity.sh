#!/bin/sh
# Fails if a pure module reads a clock, opens a file or socket, spawns, sleeps, or uses a
# HashMap (iteration order differs between runs). Address value types come from core::net. Pure = src/config, src/engine, src/sim,
# src/wire, src/time.rs, src/units.rs, src/rng.rs, src/cli.rs, src/plot.rs (STYLE.md 1.1).
set -eu
# Optional argument: the tree to check (tests point it at a planted violation).
cd "${1:-$(dirname "$0")/..}"
pure=""
for p in src/config src/engine src/sim src/wire src/time.rs src/units.rs src/rng.rs src/cli.rs src/plot.rs; do
    [ -e "$p" ] && pure="$pure $p"
done
pattern='std::net|std::fs|std::process|std::thread|std::env|Instant::now|SystemTime|libc::|nix::|HashMap|HashSet|File::open|TcpStream|UdpSocket'
# Comments (//, //!, ///) may mention these names; code may not.
if grep -rnE "$pattern" $pure | grep -vE '^[^:]+:[0-9]+:\s*//' ; then
    echo "purity: the lines above use I/O, clocks or HashMap inside a pure module" >&2
    exit 1
fi
# A pure module may not reach into the shell or the system layer at all.
if grep -rnE 'crate::(shell|sys)([^a-z_]|$)' $pure | grep -vE '^[^:]+:[0-9]+:\s*//' ; then
    echo "purity: the lines above name crate::shell or crate::sys inside a pure module" >&2
    exit 1
fi
# The compiler-checked half of this rule (renamed imports cannot hide a use) is clippy's
# disallowed-types/-methods in clippy.toml, run by `make lint`.
echo "purity: ok ($(echo $pure | wc -w) pure paths checked)"
