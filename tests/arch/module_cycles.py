#!/usr/bin/env python3
"""Fails when the top-level modules of a crate import each other in a circle.

A cycle means no module of it can be read, tested or moved without the others: the layers the
code map promises stop being true. For every crate of the workspace, each `crate::name` path in
a module (its file and sub-folder, test modules excluded) is an edge from that module to `name`;
the strongly connected components of more than one module are reported with one import line per
edge, and the exit status is 1.

Usage: python3 tests/arch/module_cycles.py [CRATE_SRC_DIR ...]   (default: every crate)
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRATE_PATH = re.compile(r"\bcrate::(\{|[a-z_][a-z0-9_]*)")
USE_GROUP = re.compile(r"\buse\s+crate::\{")


def strip_tests(text):
    """Drops `#[cfg(test)] mod … { … }` blocks: a test may reach anywhere."""
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\([a-z]+\))?\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def strip_comments(text):
    """Blanks comments and the contents of string and char literals (a `"mqtt://..."` is no
    comment, and a `"crate::x"` in a message is no import); keeps newlines so lines still count."""
    out, i, n = [], 0, len(text)
    while i < n:
        two = text[i : i + 2]
        if two == "//":
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif two == "/*":
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif text[i] == '"' or (text[i] == "r" and re.match(r'r#*"', text[i:]) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_"))):
            m = re.match(r'r(#*)"', text[i:])
            if m:
                end = '"' + m.group(1)
                j = text.find(end, i + len(m.group(0)))
                j = n if j < 0 else j + len(end)
            else:
                j = i + 1
                while j < n and text[j] != '"':
                    j += 2 if text[j] == "\\" else 1
                j += 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif text[i] == "'" and re.match(r"'(\\.|[^\\'])'", text[i:]):
            j = i + len(re.match(r"'(\\.|[^\\'])'", text[i:]).group(0))
            out.append("' '")
            i = j
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def group_heads(text, start):
    """Top-level names of a `use crate::{a::x, b, c::{d}}` group starting at `start` (the brace)."""
    heads, depth, token, expect_head = [], 0, "", True
    for ch in text[start:]:
        if ch == "{":
            depth += 1
            if depth > 1:
                expect_head = False
            continue
        if ch == "}":
            depth -= 1
            if depth == 0:
                break
            continue
        if depth == 1:
            if ch == ",":
                if expect_head and token:
                    heads.append(token)
                expect_head = True
                token = ""
            elif expect_head and (ch.isalnum() or ch == "_"):
                token += ch
            elif expect_head and token:
                heads.append(token)
                expect_head = False
                token = ""
    if expect_head and token:
        heads.append(token)
    return heads


def module_graph(src):
    files = {}
    for f in src.rglob("*.rs"):
        rel = f.relative_to(src)
        if rel.parts[0] in ("bin",) or rel.name in ("lib.rs", "main.rs") and len(rel.parts) == 1:
            continue
        top = rel.parts[0].removesuffix(".rs")
        files.setdefault(top, []).append(f)
    edges = {}
    for module, paths in files.items():
        for f in paths:
            raw = f.read_text()
            text = strip_tests(strip_comments(raw))
            for m in CRATE_PATH.finditer(text):
                names = group_heads(text, m.start(1)) if m.group(1) == "{" else [m.group(1)]
                for name in names:
                    if name in files and name != module:
                        line = raw[: raw.find(m.group(0))].count("\n") + 1 if m.group(0) in raw else 0
                        edges.setdefault((module, name), (f, line))
    return set(files), edges


def cycles(nodes, edges):
    """Tarjan's strongly connected components of more than one node."""
    succ = {n: sorted(b for (a, b) in edges if a == n) for n in nodes}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for n in sorted(nodes):
        if n not in index:
            visit(n)
    return out


def crate_sources():
    for toml in sorted(ROOT.glob("**/Cargo.toml")):
        if "target" in toml.parts or ".git" in toml.parts:
            continue
        src = toml.parent / "src"
        if src.is_dir():
            yield src


def main(argv):
    sources = [pathlib.Path(a).resolve() for a in argv] or list(crate_sources())
    found = 0
    for src in sources:
        nodes, edges = module_graph(src)
        for comp in cycles(nodes, edges):
            found += 1
            print(f"{src.relative_to(ROOT)}: modules in a cycle: {', '.join(comp)}")
            for (a, b), (f, line) in sorted(edges.items()):
                if a in comp and b in comp:
                    print(f"  {a} -> {b}   ({f.relative_to(ROOT)}:{line})")
    checked = len(sources)
    if found:
        print(f"{found} module cycle(s) in {checked} crates")
        return 1
    print(f"no module cycles in {checked} crates")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
