#!/usr/bin/env python3
"""Lists non-test functions longer than N lines (default 80), per crate; exit status 1 when any
function not in the allow list exceeds.

A function that does not fit on a screen usually does several things at once, and the one that
changes next is hard to find and to test alone. A function is counted from its `fn` line to the
closing brace at the same indentation (signature, comments and blank lines included; doc comments
and attributes above it are not). `#[cfg(test)] mod … { … }` blocks, `#[test]` functions and files
under `tests/` are skipped; only each crate's `src/` is read.

The allow list (`--allow FILE`, default tests/arch/long_functions.allow) names the exceptions, one
per line: `path/to/file.rs::Type::function  reason`, the reason being mandatory (a flat table that
splitting would make worse, say). `#` starts a comment. An entry that no longer matches a long
function is reported as stale (exit status 1), so the list cannot outlive its functions.

Usage: python3 tests/arch/long_functions.py [--max N] [--allow FILE] [CRATE_SRC_DIR ...]
       (default: every crate of the repository outside tests/)
"""
import argparse
import pathlib
import re
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from module_cycles import ROOT, crate_sources, strip_comments  # noqa: E402

FN = re.compile(
    r"^(?P<indent>\s*)(pub(\([^)]*\))?\s+)?((const|async|unsafe|extern\s+\"[^\"]*\"|extern\s+\"\")\s+)*fn\s+(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
)
IMPL = re.compile(r"^(?P<indent>\s*)(unsafe\s+)?(impl|trait|pub(\([^)]*\))?\s+trait)\b(?P<rest>.*)$")
TEST_MOD = re.compile(r"^(?P<indent>\s*)(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{")
ATTR = re.compile(r"^\s*#\[")
TEST_ATTR = re.compile(r"^\s*#\[(cfg\(test\)|test|tokio::test|[a-z_:]*::test)\b")


def impl_name(rest):
    """`impl<T> Trait for Type<T> where …` -> `Type`; `impl Type {` -> `Type`; `trait T` -> `T`."""
    rest = rest.split("{")[0].split(" where ")[0].strip()
    if rest.startswith("<"):
        depth = 0
        for i, ch in enumerate(rest):
            depth += {"<": 1, ">": -1}.get(ch, 0)
            if depth == 0:
                rest = rest[i + 1 :].strip()
                break
    if " for " in f" {rest} ":
        rest = rest.split(" for ", 1)[1].strip()
    m = re.match(r"&?(?:'\w+\s+)?(?:mut\s+)?(?:dyn\s+)?([A-Za-z_][A-Za-z0-9_:]*)", rest)
    return m.group(1).split("::")[-1] if m else None


def block_end(lines, start, indent):
    """Index of the line that closes the item opened at `start` (same indentation), or None when
    the item has no body (`fn f();` in a trait) or opens and closes on one line."""
    depth_paren = 0
    for i in range(start, len(lines)):
        line = lines[i] if i > start else lines[i][len(indent) :]
        for ch in line:
            if ch in "([":
                depth_paren += 1
            elif ch in ")]":
                depth_paren -= 1
            elif ch == ";" and depth_paren == 0:
                return None
            elif ch == "{" and depth_paren == 0:
                opened_at = i
                break
        else:
            continue
        break
    else:
        return None
    if lines[opened_at].count("{") == lines[opened_at].count("}"):
        return opened_at
    closing = re.compile(rf"^{re.escape(indent)}\}}")
    for j in range(opened_at + 1, len(lines)):
        if closing.match(lines[j]):
            return j
    return None


def functions(path):
    """(line, qualified name, length) of every non-test function of a file."""
    lines = strip_comments(path.read_text()).split("\n")
    out, impls, i = [], [], 0
    while i < len(lines):
        line = lines[i]
        attrs_test = False
        k = i - 1
        while k >= 0 and (ATTR.match(lines[k]) or not lines[k].strip()):
            if TEST_ATTR.match(lines[k]):
                attrs_test = True
            if not lines[k].strip():
                break
            k -= 1
        m_mod = TEST_MOD.match(line)
        if m_mod and attrs_test:
            end = block_end(lines, i, m_mod.group("indent"))
            i = (end if end is not None else i) + 1
            continue
        m_impl = IMPL.match(line)
        if m_impl:
            end = block_end(lines, i, m_impl.group("indent"))
            if end is not None and end > i:
                impls.append((len(m_impl.group("indent")), impl_name(m_impl.group("rest")), end))
        m_fn = FN.match(line)
        if m_fn:
            end = block_end(lines, i, m_fn.group("indent"))
            if end is not None and not attrs_test:
                owners = [name for (_, name, close) in impls if close > i and name]
                qual = "::".join(owners[-1:] + [m_fn.group("name")])
                out.append((i + 1, qual, end - i + 1))
            if end is not None and attrs_test:
                i = end + 1
                continue
        impls = [entry for entry in impls if entry[2] > i]
        i += 1
    return out


def read_allow(path):
    allow, errors = {}, []
    if not path.exists():
        return allow, errors
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            errors.append(f"{path.relative_to(ROOT)}:{n}: `{parts[0]}` has no reason (expected `path::fn  reason`)")
            continue
        allow[parts[0]] = parts[1]
    return allow, errors


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max", type=int, default=80, help="longest allowed function, in lines")
    ap.add_argument("--allow", type=pathlib.Path, default=ROOT / "tests/arch/long_functions.allow")
    ap.add_argument("crates", nargs="*", help="crate src/ directories (default: every crate)")
    args = ap.parse_args(argv)
    allow, errors = read_allow(args.allow.resolve())
    sources = [pathlib.Path(a).resolve() for a in args.crates] or [
        s for s in crate_sources() if s.relative_to(ROOT).parts[0] != "tests"
    ]
    failing, allowed_seen, summary = [], set(), []
    for src in sources:
        crate = src.parent.relative_to(ROOT)
        over = []
        for f in sorted(src.rglob("*.rs")):
            if "tests" in f.relative_to(src).parts:
                continue
            rel = f.relative_to(ROOT)
            for line, qual, length in functions(f):
                if length > args.max:
                    over.append((length, f"{rel}::{qual}", line))
        over.sort(key=lambda o: (-o[0], o[1]))
        counted = 0
        for length, key, line in over:
            if key in allow:
                allowed_seen.add(key)
                print(f"  allowed {length:4} {key} (line {line}): {allow[key]}")
            else:
                counted += 1
                failing.append(key)
                print(f"  {length:4} {key} (line {line})")
        summary.append((str(crate), counted, len(over) - counted, over[0] if over else None))
    print()
    for crate, counted, allowed, longest in summary:
        top = f"; longest {longest[1].rsplit('.rs::', 1)[1]} {longest[0]}" if longest else ""
        print(f"{crate}: {counted} over {args.max} lines, {allowed} allowed{top}")
    checked = {str(s.relative_to(ROOT)) for s in sources}
    for key in sorted(set(allow) - allowed_seen):
        if any(key.startswith(c + "/") for c in checked):
            errors.append(f"stale allow entry (no such function over {args.max} lines): {key}")
    for e in errors:
        print(e)
    print(f"{len(failing)} function(s) over {args.max} lines in {len(sources)} crates")
    return 1 if failing or errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
