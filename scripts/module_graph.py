#!/usr/bin/env python3
"""File-level module graph of src/ (bin/ left out): prints every cycle and exits 1 if any.

Every .rs file is a node (a folder's mod.rs is the folder's module). An edge A -> B is any path
in A's code (outside `#[cfg(test)] mod tests` and comments) that resolves to an item of B:
`crate::x::y::Item`, `super::x::Item`, `self::x::Item`, `child::Item`, also inside
`use ...::{a, b::c}` groups. A path resolves to the deepest module it names, so `super::Thing` from a child points
at its parent. `mod x;` declarations are not edges. Usage: python3 scripts/module_graph.py [src]
Run it with `--edges` to print the whole graph.
"""
import re
import sys
import pathlib

args = [a for a in sys.argv[1:] if not a.startswith("--")]
src = pathlib.Path(args[0] if args else "src")
show_edges = "--edges" in sys.argv

files = {}
for f in sorted(src.rglob("*.rs")):
    rel = f.relative_to(src).parts
    if rel[0] == "bin":
        continue
    if rel == ("lib.rs",):
        path = ()
    elif rel[-1] == "mod.rs":
        path = tuple(rel[:-1])
    else:
        path = tuple(rel[:-1]) + (rel[-1][:-3],)
    files[path] = f
modules = set(files)


def code_of(text):
    cut = re.search(r"#\[cfg\(test\)\]\s*mod tests", text)
    if cut:
        text = text[: cut.start()]
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)


def expand_groups(text):
    """`a::{b, c::d}` -> `a::b`, `a::c::d` (one level of braces, repeated)."""
    pattern = re.compile(r"((?:\w+::)+)\{([^{}]*)\}")
    while True:
        new = pattern.sub(
            lambda m: " ".join(
                m.group(1) + part.strip()
                for part in m.group(2).split(",")
                if part.strip() and part.strip() != "self"
            )
            + (" " + m.group(1)[:-2] if "self" in [p.strip() for p in m.group(2).split(",")] else ""),
            text,
        )
        if new == text:
            return text
        text = new


def resolve(base, names):
    """The deepest module named by `names` relative to module path `base`."""
    current = base
    for name in names:
        candidate = current + (name,)
        if candidate in modules:
            current = candidate
        else:
            break
    return current


graph = {m: set() for m in modules}
for module, f in files.items():
    text = expand_groups(code_of(f.read_text()))
    for m in re.finditer(r"\b(crate|super|self)((?:::\w+)+)", text):
        head, rest = m.group(1), m.group(2).split("::")[1:]
        if head == "crate":
            base = ()
        elif head == "super":
            base = module[:-1]
            while rest and rest[0] == "super":
                base, rest = base[:-1], rest[1:]
        else:
            base = module
        target = resolve(base, rest)
        if target != module:
            graph[module].add(target)
    # Paths relative to this module: `child::Item`, as in `pub use child::Item;` or a call
    # `child::function()` (not preceded by `::`, which the loop above handles).
    for m in re.finditer(r"(?<![:\w])(\w+)::", text):
        child = module + (m.group(1),)
        if child in modules:
            graph[module].add(child)

# Tarjan's strongly connected components.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(10000)


def strong(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in sorted(graph[v]):
        if w not in index:
            strong(w)
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
        sccs.append(comp)


for v in sorted(graph):
    if v not in index:
        strong(v)

name = lambda m: "::".join(m) or "crate"
if show_edges:
    for m in sorted(graph):
        print(f"{name(m)} -> {', '.join(name(t) for t in sorted(graph[m])) or '-'}")
cycles = [sorted(c) for c in sccs if len(c) > 1]
for c in cycles:
    edges = [f"{name(a)}->{name(b)}" for a in c for b in sorted(graph[a]) if b in c]
    print("cycle:", " ".join(name(m) for m in c), "|", " ".join(edges))
print(f"{len(graph)} modules (files), {len(cycles)} cycle(s)")
sys.exit(1 if cycles else 0)
