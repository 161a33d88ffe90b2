#!/usr/bin/env python3
"""Fails when the top-level modules of a crate import each other in a circle.

A cycle means no module of it can be read, tested or moved without the others: the layers the
code map promises stop being true. For every crate of the workspace and every folder of it (the
crate root included), each path a module names (`crate::a::b`, `super::x`, `self::y`, the names
of a `use crate::{...}` group; test modules, comments and strings excluded) is an edge between
the sibling modules that hold the two ends. Strongly connected components of more than one
sibling are reported with one import line per edge, and the exit status is 1. A folder's own
file (`lib.rs`, `mod.rs`) is not a sibling: it may declare shared types its children use and
call into them (the module tree itself).

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


PATH_REF = re.compile(r"\b((?:crate|self|super)(?:::(?:super|self))*)::(\{|[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*)")


def module_path(src, f):
    """Module path of a source file: `a/b.rs` and `a/b/mod.rs` are `a::b`; lib.rs and main.rs
    are the crate root `()`."""
    rel = f.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod" or (len(parts) == 1 and parts[0] in ("lib", "main")):
        parts = parts[:-1]
    return tuple(parts)


BARE_REF = re.compile(r"(?<![:\w])([a-z_][a-z0-9_]*)::(\{|[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*)")


REEXPORT = re.compile(r"(?m)^\s*pub(?:\([a-z]+\))?\s+use\s+(?:self::)?[a-z_][a-z0-9_]*(?:::[^;]*)?;")


def references(text, here, kids=()):
    """Absolute paths named in a file of module `here`: `crate::a::b`, `super::x`, `self::y`,
    a path that starts with one of its own child modules (`kids`), and each head of a
    `use crate::{a, b::c}` group. Pairs of (path, offset)."""
    for m in BARE_REF.finditer(text):
        if m.group(1) in kids:
            tail = m.group(2)
            heads = group_heads(text, m.start(2)) if tail == "{" else [tail]
            for h in heads:
                yield tuple(list(here) + [m.group(1)] + h.split("::")), m.start()
    for m in PATH_REF.finditer(text):
        base = list(here)
        for seg in m.group(1).split("::"):
            if seg == "crate":
                base = []
            elif seg == "super":
                base = base[:-1]
        tail = m.group(2)
        heads = group_heads(text, m.start(2)) if tail == "{" else [tail]
        for h in heads:
            yield tuple(base + h.split("::")), m.start()


def module_graph(src):
    """Edges between sibling modules, for every folder of the crate (the root included): for
    a folder `P`, the nodes are its child modules and `P` itself (its own file, `(self)`); a
    file under child `a` naming anything under child `b` is an edge `a -> b`, naming an item
    of `P`'s own file is `a -> (self)`, and `P`'s own file naming a child is `(self) -> a`."""
    files = {}
    for f in src.rglob("*.rs"):
        rel = f.relative_to(src)
        if rel.parts[0] == "bin" or (len(rel.parts) == 1 and rel.name == "main.rs" and (src / "lib.rs").exists()):
            continue
        files[f] = module_path(src, f)
    modules = set(files.values())
    children = {}
    for mod in modules:
        for i in range(len(mod)):
            children.setdefault(mod[:i], set()).add(mod[i])
    edges = {}
    for f, here in files.items():
        raw = f.read_text()
        text = strip_tests(strip_comments(raw))
        # A folder's re-exports (`pub use child::Item;`) are its facade, not a use: blanked.
        text = REEXPORT.sub(lambda m: " " * len(m.group(0)), text)
        for path, offset in references(text, here, children.get(here, ())):
            for parent, kids in children.items():
                n = len(parent)
                if here[:n] != parent or path[:n] != parent:
                    continue
                a = here[n] if len(here) > n else "(self)"
                if len(path) > n and path[n] in kids:
                    b = path[n]
                elif len(path) > n:
                    b = "(self)"
                else:
                    continue
                if a != b:
                    line = text[:offset].count("\n") + 1
                    edges.setdefault((parent, a, b), (f, line))
    return children, edges


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
        children, edges = module_graph(src)
        for parent in sorted(children):
            # A folder's own file and its children may use each other (the module tree: shared
            # types above, parts below); the siblings must not.
            nodes = set(children[parent])
            level = {
                (a, b): v
                for (p, a, b), v in edges.items()
                if p == parent and "(self)" not in (a, b)
            }
            for comp in cycles(nodes, level):
                found += 1
                where = "::".join(parent) or "crate root"
                print(f"{src.relative_to(ROOT)} ({where}): modules in a cycle: {', '.join(comp)}")
                for (a, b), (f, line) in sorted(level.items()):
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
