"""`python -m tooling.imports`: the project's import graph, checked. Prints the cycles among its
modules (top-level and function-level imports alike) and the edges between its packages; exits 1 if
there is a cycle, or if anything outside tests/ imports tests."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "training", "worker", "demo", "bench", "tooling", "tests")


def modules(root: Path = ROOT) -> dict[str, Path]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] not in PACKAGES:
            continue
        name = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        out[name] = path
    return out


def graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (a package's own __init__ excluded)."""
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            for target in targets:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def package_edges(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for name, targets in edges.items():
        for target in targets:
            a, b = name.split(".")[0], target.split(".")[0]
            if a != b:
                out.setdefault(a, set()).add(b)
    return out


def main() -> int:
    edges = graph(modules())
    found = cycles(edges)
    packages = package_edges(edges)
    for package, targets in sorted(packages.items()):
        print(f"{package:<9} imports {', '.join(sorted(targets))}")
    into_tests = sorted(m for m, ts in edges.items() if not m.startswith("tests") and any(
        t.startswith("tests") for t in ts))  # fmt: skip
    print(f"module cycles: {len(found)}" + "".join(f"\n  {' <-> '.join(c)}" for c in found))
    listed = "".join(f"\n  {m}" for m in into_tests)
    print(f"modules outside tests/ that import tests: {len(into_tests)}{listed}")
    return 1 if found or into_tests else 0


if __name__ == "__main__":
    sys.exit(main())
