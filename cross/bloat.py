#!/usr/bin/env python3
"""Where the bytes of a binary go, per crate (standard library only; `cross/build.sh --bloat`).

    bloat.py BINARY [--c-archive LABEL=ARCHIVE]... [--nm llvm-nm]

BINARY must be unstripped (the symbol table is the evidence). Every defined function and
object symbol with a size is attributed:
  * Rust symbols (legacy `_ZN…E` or v0 `_R…` mangling) to the crate of their path; an impl
    (`<T as Trait>::f`) to T's crate, or to the trait's crate when T is from core/alloc/std;
    generic std code instantiated for another crate's types stays with std, as cargo-bloat
    counts it;
  * C symbols to the archive that defines them (--c-archive LABEL=PATH, e.g. SQLite's and
    ring's static libraries from the build), the rest to musl/compiler-rt/libunwind (zig);
  * what no symbol covers (string literals and other anonymous read-only data, ELF and
    program headers, relocations, padding) as "other".
Aliases (one address and size under several names) count once.
"""

import argparse
import collections
import os
import re
import subprocess
import sys

STD = {"core", "alloc", "std", "std_detect", "compiler_builtins", "panic_abort", "hashbrown", "memchr"}


def legacy_components(sym):
    """Path components of a legacy-mangled Rust symbol (`_ZN` len name … `E`)."""
    if not sym.startswith("_ZN"):
        return None
    i, out = 3, []
    while i < len(sym) and sym[i].isdigit():
        j = i
        while j < len(sym) and sym[j].isdigit():
            j += 1
        n = int(sym[i:j])
        out.append(sym[j : j + n])
        i = j + n
    return out or None


def decode(s):
    for a, b in (("$LT$", "<"), ("$GT$", ">"), ("$RF$", "&"), ("$BP$", "*"), ("$u20$", " "),
                 ("$u5b$", "["), ("$u5d$", "]"), ("$u7b$", "{"), ("$u7d$", "}"), ("$C$", ","),
                 ("..", "::"), ("$u27$", "'"), ("$u2b$", "+"), ("$u3b$", ";"), ("$u22$", '"')):
        s = s.replace(a, b)
    return s.lstrip("_")


def first_crate(path):
    """The first crate-like path in a decoded type string."""
    m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)::", path)
    return m.group(1) if m else None


def rust_crate(sym):
    comps = legacy_components(sym)
    if comps:
        head = decode(comps[0])
        if head.startswith("<"):
            inner = head[1:]
            self_ty, _, trait = inner.partition(" as ")
            crate = first_crate(self_ty.lstrip("&*[mut const dyn "))
            tcrate = first_crate(trait) if trait else None
            if (crate is None or crate in STD) and tcrate and tcrate not in STD:
                return tcrate
            return crate or tcrate or "?"
        return head
    if sym.startswith("_R"):
        # v0: _R [vendor] N... C <len><crate>; the first C-tagged identifier is the crate.
        m = re.search(r"C(?:s[0-9a-zA-Z]*_)?(\d+)([A-Za-z_][A-Za-z0-9_]*)", sym[2:])
        if m:
            n = int(m.group(1))
            return m.group(2)[:n]
    return None


def nm(tool, path, *args):
    return subprocess.run([tool, *args, path], check=True, capture_output=True, text=True).stdout


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("binary")
    p.add_argument("--c-archive", action="append", default=[])
    p.add_argument("--nm", default="llvm-nm")
    a = p.parse_args()

    c_owner = {}
    for spec in a.c_archive:
        label, _, path = spec.partition("=")
        for line in nm(a.nm, path, "--defined-only", "--format=just-symbols").splitlines():
            if line and not line.endswith(":"):
                c_owner.setdefault(line.strip(), label)

    seen = set()
    sizes = collections.Counter()
    for line in nm(a.nm, a.binary, "-S", "--defined-only").splitlines():
        parts = line.split()
        if len(parts) != 4:
            continue
        addr, size, kind, name = parts
        size = int(size, 16)
        if size == 0 or kind.lower() not in "tdrb" or (addr, size) in seen:
            continue
        seen.add((addr, size))
        if kind.lower() == "b":
            continue  # .bss takes no file space
        crate = rust_crate(name)
        if crate is None:
            crate = c_owner.get(name, "C: musl libc, compiler-rt, libunwind (zig)")
        elif crate in ("core", "alloc", "std", "std_detect", "compiler_builtins", "panic_abort"):
            crate = "Rust std (core, alloc, std)"
        sizes[crate] += size

    total = os.path.getsize(a.binary)
    stripped = total
    try:
        stripped = int(subprocess.run(["sh", "-c", 'f=$(mktemp); cp "$1" "$f"; '
                                       '"$2" --strip-all "$f" 2>/dev/null && stat -c %s "$f"; rm -f "$f"',
                                       "sh", a.binary, a.nm.replace("llvm-nm", "llvm-objcopy")],
                                      capture_output=True, text=True).stdout.strip() or total)
    except ValueError:
        pass
    counted = sum(sizes.values())
    print(f"{'crate':<48} {'bytes':>9} {'share':>6}")
    for crate, n in sizes.most_common():
        if n * 1000 < stripped:
            continue
        print(f"{crate:<48} {n:>9} {100 * n / stripped:5.1f}%")
    small = sum(n for n in sizes.values() if n * 1000 < stripped)
    if small:
        print(f"{'(each under 0.1 %)':<48} {small:>9} {100 * small / stripped:5.1f}%")
    other = stripped - counted
    print(f"{'other: anonymous rodata (strings), headers, relocations, padding':<48} {other:>9} {100 * other / stripped:5.1f}%")
    print(f"{'stripped file':<48} {stripped:>9}")


if __name__ == "__main__":
    sys.exit(main())
