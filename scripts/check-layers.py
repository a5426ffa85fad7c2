#!/usr/bin/env python3
"""Checks that each library crate's modules import each other in one direction.

For every crate under libs/ and benches/, reads which of its own modules
each source file names (`crate::a::b`, `super::x`, `use crate::{a, b}`),
then fails on any import circle, among files or among a crate's top-level
folders (its areas). Circles between crates cannot exist: cargo refuses them.

    scripts/check-layers.py            # check; print circles and exit 1
    scripts/check-layers.py --graph    # also print each crate's areas, bottom first

Test modules (`#[cfg(test)] mod tests` blocks) are skipped: a test may reach
anything. So are the crate root, which declares and re-exports every module,
and `error.rs`, the crate's one error type, which every module returns and
which may name any module's values. ADR-038 records the layers this keeps.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def crates():
    for manifest in sorted(ROOT.glob("libs/*/Cargo.toml")) + [ROOT / "benches/Cargo.toml"]:
        src = manifest.parent / "src"
        if src.is_dir():
            yield manifest.parent.name, src


def module_of(src: Path, file: Path) -> tuple:
    """`src/a/b.rs` and `src/a/b/mod.rs` are module ('a', 'b'); lib.rs and main.rs are ()."""
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts.pop()
    return tuple(parts)


def strip(text: str) -> str:
    """Drops comments, string literals and `#[cfg(test)]` items."""
    # One pass, left to right, so that `//` inside a string is not a comment.
    token = re.compile(
        r'(?<![A-Za-z0-9_])r(#*)"(?:.|\n)*?"\1'  # raw string
        r'|b?"(?:\\.|[^"\\])*"'  # string
        r"|b?'(?:\\.|[^'\\])'"  # char literal, '"' included
        r"|//[^\n]*"  # line comment
        r"|/\*(?:.|\n)*?\*/",  # block comment
        re.S,
    )
    text = token.sub(lambda m: '""' if m.group(0)[-1:] in "\"#'" else "", text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while depth and j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def reexports(root_text: str, modules: set) -> dict:
    """Names the crate root re-exports (`pub use a::b::{X, Y}`), by the module that defines them."""
    out = {}
    for m in re.finditer(r"\bpub use ((?:\w+::)+)(\{[^}]*\}|\w+)\s*;", root_text):
        module = tuple(s for s in m.group(1).split("::") if s)
        while module and module not in modules:
            module = module[:-1]
        for item in re.findall(r"\w+(?:\s+as\s+\w+)?", m.group(2)):
            out[item.split()[-1]] = module
    return out


def paths_named(text: str, here: tuple, modules: set, exported: dict) -> set:
    """The crate's own modules a file refers to, each as the longest known prefix
    (a name the root re-exports counts as its defining module)."""
    found = set()

    def add(path):
        path = tuple(path)
        if len(path) >= 1 and path[0] in exported and path[:1] not in modules:
            path = exported[path[0]] + path[1:]
        while path and path not in modules:
            path = path[:-1]
        if path and path != here[: len(path)]:
            found.add(path)

    def expand(prefix, body):
        # `a::{b, c::d}` → a::b, a::c::d (one level of braces is enough here)
        depth, start, items = 0, 0, []
        for k, ch in enumerate(body):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                items.append(body[start:k])
                start = k + 1
        items.append(body[start:])
        for item in items:
            item = item.strip()
            if not item:
                continue
            head = re.match(rf"({IDENT}(?:::{IDENT})*)(?:::\{{(.*)\}})?", item, re.S)
            if not head:
                continue
            segs = head.group(1).split("::")
            if head.group(2) is not None:
                expand(prefix + segs, head.group(2))
            else:
                add(prefix + segs)

    for m in re.finditer(rf"\b(crate|super(?:::super)*)::((?:{IDENT}::)*)(\{{[^;]*?\}}|{IDENT})", text):
        root, mid, last = m.group(1), m.group(2), m.group(3)
        if root == "crate":
            base = []
        else:
            base = list(here[: len(here) - root.count("super")])
        segs = base + [s for s in mid.split("::") if s]
        if last.startswith("{"):
            expand(segs, last[1:-1])
        else:
            add(segs + [last])
    return found


def cycles(graph: dict) -> list:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def levels(graph: dict) -> list:
    """Nodes by height: level 0 imports nothing of the crate."""
    height = {}

    def h(v):
        if v not in height:
            height[v] = 0
            height[v] = 1 + max((h(w) for w in graph.get(v, ()) if w != v), default=-1)
        return height[v]

    for v in graph:
        h(v)
    by = {}
    for v, k in height.items():
        by.setdefault(k, []).append(v)
    return [sorted(by[k]) for k in sorted(by)]


def name(path: tuple) -> str:
    return "::".join(path) or "(root)"


def main() -> int:
    show = "--graph" in sys.argv
    failed = False
    for crate, src in crates():
        files = {f: module_of(src, f) for f in src.rglob("*.rs")}
        modules = set(files.values())
        roots = [f for f, m in files.items() if m == () and f.parent == src]
        exported = reexports(strip(roots[0].read_text()), modules) if roots else {}
        graph = {}
        for f, here in files.items():
            graph[here] = paths_named(strip(f.read_text()), here, modules, exported)
        # The crate root (lib.rs) declares and re-exports everything, and the
        # crate's one error type (error.rs) names values from any module while
        # every module returns it: both stand outside the layers.
        for outside in [(), ("error",)]:
            graph.pop(outside, None)
            for deps in graph.values():
                deps.discard(outside)
        areas = {}
        for v, deps in graph.items():
            for w in deps:
                if v[:1] != w[:1]:
                    areas.setdefault(v[:1], set()).add(w[:1])
            areas.setdefault(v[:1], set())
        for kind, g in (("files", graph), ("areas", areas)):
            for comp in cycles(g):
                failed = True
                print(f"{crate}: import circle among {kind}: {', '.join(map(name, comp))}")
                for v in comp:
                    inside = sorted(name(w) for w in g[v] if w in comp)
                    print(f"    {name(v)} -> {', '.join(inside)}")
        if show and not cycles(areas):
            print(f"{crate} (bottom first):")
            for k, level in enumerate(levels(areas)):
                print(f"  {k}: {', '.join(map(name, level))}")
    if failed:
        print("strata: import circles (see above); ADR-038 says which way each layer imports", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
