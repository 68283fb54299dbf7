#!/usr/bin/env python3
"""Fails when the modules of a library crate depend on each other in a cycle.

Why: imports inside a crate should point one way (leaf modules <- mechanisms <-
orchestration). A cycle means two modules can only be understood, tested and changed
together; it is how a "small module" quietly becomes one big one. The compiler accepts
cycles, so this script is the check.

The graph, per crate (the `src/` of each library crate):

* a node is a module: `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`, `src/lib.rs` is the
  crate root; binaries (`src/main.rs`, `src/bin/`) are not part of the library;
* an edge goes from a file's module to every module a `crate::...`, `super::...` (or
  `self::...`) path names, in `use` declarations and in code. A path is resolved to the
  longest known module prefix; an item a module re-exports (`pub use x::Y;`) resolves to
  the module that defines it;
* edges from a module to itself or to its own descendants are ignored: a parent declaring
  `mod x; pub use x::Y;` is a declaration, not a dependency;
* a method written in an `impl Type { ... }` block of another module than `Type`'s (an
  extension, like `impl Store` in `import/`) is a dependency of its callers on that module:
  a call `.name(` or `::name(` anywhere adds an edge to it, when no other function of the
  crate has that name (so that `store.rs` calling an import method shows as
  `store -> import`, which a `use` would never show);
* `#[cfg(test)]` items (`mod tests { ... }`, `mod tests;`, `use ...;`) are ignored: tests
  may look anywhere. Comments (doc links included) and string literals are ignored.

Then every strongly connected component of more than one module is reported, with a
shortest cycle through each of its modules and the edges (file:line) inside it.

Usage: scripts/check-module-cycles.py                 # every library crate (scripts/test.sh)
       scripts/check-module-cycles.py --crate NAME    # one crate (repeatable)
Exits 1 when any checked crate has a cycle.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict, deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Library crates checked, by directory.
CRATES = [
    "resilience-core",
    "fleet-drain",
    "node-modules-alloc",
    "bindings-node",
    "examples",
    "slab",
]

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


# ---------------------------------------------------------------------------------------
# Source cleaning


def strip_comments_and_strings(text: str) -> str:
    """Replaces comments, string and char literals by spaces (newlines kept, so line
    numbers and offsets stay valid)."""
    out = []
    i, n = 0, len(text)

    def blank(segment: str) -> str:
        return "".join("\n" if c == "\n" else " " for c in segment)

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(text[i:j]))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text[i:j]))
            i = j
        elif (m := re.compile(r'b?r(#*)"').match(text, i)) and (
            i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")
        ):
            end = text.find('"' + m.group(1), m.end())
            j = n if end < 0 else end + 1 + len(m.group(1))
            out.append(blank(text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(blank(text[i : j + 1]))
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}') — not a lifetime ('a).
            m = re.compile(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'").match(text, i)
            if m:
                out.append(blank(m.group(0)))
                i = m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching_brace(text: str, open_pos: int) -> int:
    depth = 0
    for j in range(open_pos, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(text) - 1


CFG_TEST = re.compile(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]")
ATTR = re.compile(r"\s*(#\s*!?\s*\[[^\]]*\]\s*)*")
INLINE_MOD = re.compile(rf"\b(?:pub(?:\s*\([^)]*\))?\s+)?mod\s+({IDENT})\s*\{{")
FILE_MOD = re.compile(rf"\b(?:pub(?:\s*\([^)]*\))?\s+)?mod\s+({IDENT})\s*;")


def blank_cfg_test_items(text: str) -> tuple[str, set[str]]:
    """Blanks `#[cfg(test)]` items; returns the text and the names of `#[cfg(test)] mod x;`
    file modules (whose files are then skipped)."""
    test_file_mods: set[str] = set()
    chars = list(text)
    for m in CFG_TEST.finditer(text):
        start = m.start()
        pos = ATTR.match(text, m.end()).end()
        if fm := FILE_MOD.match(text, pos):
            test_file_mods.add(fm.group(1))
            end = fm.end()
        elif im := INLINE_MOD.match(text, pos):
            end = matching_brace(text, im.end() - 1) + 1
        else:
            # Any other item: up to its `;` or its braced body, whichever comes first.
            semi = text.find(";", pos)
            brace = text.find("{", pos)
            if brace >= 0 and (semi < 0 or brace < semi):
                end = matching_brace(text, brace) + 1
            else:
                end = (semi if semi >= 0 else len(text)) + 1
        for k in range(start, min(end, len(chars))):
            if chars[k] != "\n":
                chars[k] = " "
    return "".join(chars), test_file_mods


# ---------------------------------------------------------------------------------------
# Modules and paths


def module_files(src: Path) -> dict[tuple[str, ...], Path]:
    """Module path -> file, for the library part of `src/`."""
    mods: dict[tuple[str, ...], Path] = {}
    for path in sorted(src.rglob("*.rs")):
        rel = path.relative_to(src).with_suffix("").parts
        if rel == ("main",) or rel[0] == "bin":
            continue
        if rel == ("lib",):
            mods[()] = path
        elif rel[-1] == "mod":
            mods[rel[:-1]] = path
        else:
            mods[rel] = path
    return mods


def expand_use_tree(tree: str) -> list[str]:
    """`a::{b, c::{d, e}}` -> [`a::b`, `a::c::d`, `a::c::e`] (`as` renames dropped)."""
    tree = re.sub(r"\s+", " ", tree).strip()
    brace = tree.find("{")
    if brace < 0:
        tree = re.sub(r"\s+as\s+\w+$", "", tree).strip()
        return [tree] if tree else []
    prefix = tree[:brace].strip()
    inner = tree[brace + 1 : tree.rfind("}")]
    parts, depth, cur = [], 0, []
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur.append(ch)
    parts.append("".join(cur))
    out = []
    for part in parts:
        for sub in expand_use_tree(part):
            if sub == "self":
                out.append(prefix.rstrip(":").rstrip(":"))
            else:
                out.append(prefix + sub)
    return out


USE_DECL = re.compile(r"\b(?:pub(?:\s*\([^)]*\))?\s+)?use\s+([^;]+);")
CODE_PATH = re.compile(rf"(?<![A-Za-z0-9_:])(crate|super|self)((?:\s*::\s*{IDENT})+)")


class Crate:
    def __init__(self, name: str, root: Path = ROOT):
        self.name = name
        self.root = root
        self.src = root / name / "src"
        self.files = module_files(self.src)
        self.cleaned: dict[tuple[str, ...], str] = {}
        test_mods: set[tuple[str, ...]] = set()
        for mod, path in self.files.items():
            text, tests = blank_cfg_test_items(strip_comments_and_strings(path.read_text()))
            self.cleaned[mod] = text
            test_mods |= {mod + (t,) for t in tests}
        # Drop test-only files and everything under them.
        for mod in list(self.files):
            if any(mod[: len(t)] == t for t in test_mods):
                del self.files[mod]
                del self.cleaned[mod]
        self.modules = set(self.files)
        self.inline_mods: dict[tuple[str, ...], list[tuple[int, int, str]]] = {}
        for mod, text in self.cleaned.items():
            blocks = []
            for m in INLINE_MOD.finditer(text):
                blocks.append((m.end() - 1, matching_brace(text, m.end() - 1), m.group(1)))
                self.modules.add(mod + (m.group(1),))
            self.inline_mods[mod] = blocks
        self.reexports = self._reexports()
        self.extension_methods = self._extension_methods()

    def _extension_methods(self) -> dict[str, tuple[str, ...]]:
        """Method name -> module of its `impl`, for methods written outside the module that
        defines their type, and whose name no other function of the crate has."""
        definers = defaultdict(set)
        fn_count = defaultdict(int)
        for mod, text in self.cleaned.items():
            for m in re.finditer(rf"\b(?:struct|enum|trait|union|type)\s+({IDENT})", text):
                definers[m.group(1)].add(self.module_at(mod, m.start()))
            for m in re.finditer(rf"\bfn\s+({IDENT})", text):
                fn_count[m.group(1)] += 1
        out = {}
        impl = re.compile(rf"\bimpl\s*(?:<[^{{]*?>)?\s*({IDENT})\s*(?:<[^{{]*?>)?\s*\{{")
        for mod, text in self.cleaned.items():
            for m in impl.finditer(text):
                home = self.module_at(mod, m.start())
                owners = definers.get(m.group(1), set())
                if len(owners) != 1 or home in owners:
                    continue
                body = text[m.end() : matching_brace(text, m.end() - 1)]
                for f in re.finditer(rf"\bfn\s+({IDENT})", body):
                    if fn_count[f.group(1)] == 1:
                        out[f.group(1)] = home
        return out

    def module_at(self, file_mod: tuple[str, ...], pos: int) -> tuple[str, ...]:
        inner = [name for (s, e, name) in self.inline_mods[file_mod] if s < pos < e]
        return file_mod + tuple(inner)

    def _absolute(self, cur: tuple[str, ...], path: str) -> list[str] | None:
        """Absolute segments (from the crate root) of a `crate::`/`super::`/`self::` path,
        or None for a path into another crate or a child module by its bare name."""
        segs = [s for s in re.split(r"\s*::\s*", path.strip()) if s]
        if not segs:
            return None
        if segs[0] == "crate":
            return segs[1:]
        if segs[0] in ("super", "self"):
            base = list(cur)
            while segs and segs[0] in ("super", "self"):
                if segs[0] == "super":
                    if not base:
                        return None
                    base.pop()
                segs = segs[1:]
            return base + segs
        if tuple(cur) + (segs[0],) in self.modules:  # `use child::X;` (2018 paths)
            return list(cur) + segs
        return None

    def _reexports(self) -> dict[tuple[str, ...], dict[str, list[str]]]:
        """module -> {item name it re-exports -> absolute path of the original}."""
        table: dict[tuple[str, ...], dict[str, list[str]]] = defaultdict(dict)
        for mod, text in self.cleaned.items():
            for m in USE_DECL.finditer(text):
                if not m.group(0).lstrip().startswith("pub"):
                    continue
                cur = self.module_at(mod, m.start())
                for p in expand_use_tree(m.group(1)):
                    alias = re.search(r"\bas\s+(\w+)\s*$", p)
                    p = re.sub(r"\s+as\s+\w+\s*$", "", p)
                    absolute = self._absolute(cur, p)
                    if absolute:
                        name = alias.group(1) if alias else absolute[-1]
                        table[cur][name] = absolute
        return table

    def resolve(self, absolute: list[str], depth: int = 0) -> tuple[str, ...]:
        """The module an absolute path names: its longest module prefix, following
        re-exports of the next segment."""
        best = ()
        for k in range(len(absolute) + 1):
            if tuple(absolute[:k]) in self.modules:
                best = tuple(absolute[:k])
            else:
                break
        rest = absolute[len(best) :]
        if rest and depth < 8 and rest[0] in self.reexports.get(best, {}):
            target = self.reexports[best][rest[0]]
            return self.resolve(target + rest[1:], depth + 1)
        return best

    def edges(self):
        """(from, to) -> [(file:line, path text)]."""
        found: dict[tuple, list] = defaultdict(list)
        for mod, text in self.cleaned.items():
            rel = self.files[mod].relative_to(self.root)

            def add(cur, absolute, pos, shown):
                if absolute is None:
                    return
                target = self.resolve(absolute)
                if target[: len(cur)] == cur:  # itself or a descendant
                    return
                line = text.count("\n", 0, pos) + 1
                found[(cur, target)].append((f"{rel}:{line}", shown))

            use_spans = []
            for m in USE_DECL.finditer(text):
                use_spans.append((m.start(), m.end()))
                cur = self.module_at(mod, m.start())
                for p in expand_use_tree(m.group(1)):
                    p = re.sub(r"\s+as\s+\w+\s*$", "", p)
                    add(cur, self._absolute(cur, p), m.start(), "use " + p)
            for method, home in self.extension_methods.items():
                for m in re.finditer(rf"(?:\.|::)\s*{method}\s*(?:::\s*<[^>]*>\s*)?\(", text):
                    cur = self.module_at(mod, m.start())
                    add(cur, list(home), m.start(), f"{method}() of an impl in {name(home)}")
            for m in CODE_PATH.finditer(text):
                if any(s <= m.start() < e for s, e in use_spans):
                    continue
                cur = self.module_at(mod, m.start())
                path = re.sub(r"\s+", "", m.group(0))
                add(cur, self._absolute(cur, path), m.start(), path)
        return found


# ---------------------------------------------------------------------------------------
# Graph


def strongly_connected(nodes, succ):
    """Tarjan, iterative."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(succ[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(succ[nxt])))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                out.append(comp)
    return out


def shortest_cycle(start, succ, allowed):
    prev = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(succ[node]):
            if nxt not in allowed:
                continue
            if nxt == start:
                path = [node]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if nxt not in prev:
                prev[nxt] = node
                queue.append(nxt)
    return None


def name(mod: tuple[str, ...]) -> str:
    return "::".join(mod) if mod else "crate"


def check(crate_name: str, root: Path = ROOT) -> int:
    """Prints the crate's cycles; returns how many strongly connected components."""
    crate = Crate(crate_name, root)
    edges = crate.edges()
    succ = defaultdict(set)
    for a, b in edges:
        succ[a].add(b)
    nodes = sorted(crate.modules | {m for e in edges for m in e})
    comps = [sorted(c) for c in strongly_connected(nodes, succ) if len(c) > 1]
    print(f"{crate_name}: {len(nodes)} modules, {len(edges)} dependencies, ", end="")
    if not comps:
        print("no cycle")
        return 0
    print(f"{len(comps)} group(s) of modules in a cycle")
    for comp in sorted(comps):
        members = set(comp)
        print(f"\n  cycle group: {', '.join(name(m) for m in comp)}")
        seen = set()
        for m in comp:
            cyc = shortest_cycle(m, succ, members)
            if not cyc:
                continue
            key = frozenset(zip(cyc, cyc[1:]))
            if key in seen:
                continue
            seen.add(key)
            print("    cycle: " + " -> ".join(name(x) for x in cyc))
        print("    edges inside the group:")
        for (a, b), where in sorted(edges.items()):
            if a in members and b in members:
                locs = ", ".join(f"{loc} ({shown})" for loc, shown in where[:3])
                more = f" and {len(where) - 3} more" if len(where) > 3 else ""
                print(f"      {name(a)} -> {name(b)}: {locs}{more}")
    return len(comps)


# Fixture crates of --self-test: (files, expected number of cycle groups).
SELF_TEST_CASES = {
    "one-way": (
        {
            "lib.rs": "mod types;\nmod engine;\npub use engine::run;\n",
            "types.rs": "pub struct Id(pub u32);\n",
            "engine.rs": "use crate::types::Id;\n/// Uses [`crate::lib`] in a doc link only.\n"
            "pub fn run() -> Id { Id(1) }\n",
        },
        0,
    ),
    "use-cycle": (
        {
            "lib.rs": "mod a;\nmod b;\n",
            "a.rs": "use crate::b::B;\npub struct A(pub B);\n",
            "b.rs": "pub struct B;\nfn f() -> super::a::A { todo!() }\n",
        },
        1,
    ),
    "extension-impl-cycle": (
        {
            "lib.rs": "mod store;\nmod import;\n",
            "store.rs": "pub struct Store;\nfn g(s: &Store) { s.import_tarball(); }\n",
            "import.rs": "use crate::store::Store;\n"
            "impl Store { pub fn import_tarball(&self) {} }\n",
        },
        1,
    ),
    "test-only-edge": (
        {
            "lib.rs": "mod a;\nmod b;\n",
            "a.rs": "pub struct A;\n#[cfg(test)]\nmod tests { use crate::b::B; }\n",
            "b.rs": "use crate::a::A;\npub struct B(A);\n",
        },
        0,
    ),
}


def self_test() -> int:
    """Checks the checker on fixture crates: cycles through `use`, `super::` paths and
    extension impls are found; doc links and test-only modules are not edges."""
    import tempfile

    wrong = []
    with tempfile.TemporaryDirectory() as tmp:
        for case, (files, expected) in SELF_TEST_CASES.items():
            src = Path(tmp) / case / "src"
            src.mkdir(parents=True)
            for file, text in files.items():
                (src / file).write_text(text)
            found = check(case, Path(tmp))
            if found != expected:
                wrong.append(f"{case}: {found} cycle group(s), expected {expected}")
    for line in wrong:
        print(f"self-test FAILED: {line}", file=sys.stderr)
    print("self-test: " + ("failed" if wrong else f"{len(SELF_TEST_CASES)} fixtures as expected"))
    return 1 if wrong else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crate", action="append", choices=CRATES, help="crate directory")
    parser.add_argument(
        "--self-test", action="store_true", help="check the checker on fixture crates"
    )
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    failed = []
    for crate in args.crate or CRATES:
        if check(crate):
            failed.append(crate)
        print()
    if failed:
        print(f"module cycles in: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
