"""The import graph (tooling/imports.py): no cycle among the project's modules, nothing outside tests/
imports tests, and the product packages import no tooling."""

from __future__ import annotations

from tooling.imports import cycles, graph, modules, package_edges


def test_the_import_graph_has_no_cycle_and_only_tests_import_tests() -> None:
    edges = graph(modules())
    assert cycles(edges) == []
    outside = {m: ts for m, ts in edges.items() if not m.startswith("tests")}
    assert [m for m, ts in outside.items() if any(t.startswith("tests") for t in ts)] == []
    packages = package_edges(edges)
    for product in ("schemas", "training", "worker"):
        assert not packages.get(product, set()) & {"tooling", "bench", "demo", "tests"}, packages[product]


def test_a_cycle_is_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
