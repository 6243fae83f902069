"""The bench's figures beside the committed ones (bench/figures.py): a regression is marked, whichever
way is better for the figure, and a partial run keeps the figures it did not take."""

from __future__ import annotations

from pathlib import Path

from bench.figures import Figures, load


def test_a_drop_beyond_15_percent_is_marked_whichever_way_is_better(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    before = Figures()
    before.add("c", "(c) drain", 20_000, "records/s")
    before.add("e p99", "(e) p99", 40, "ms", higher_is_better=False)
    before.add("g", "(g) windows/s", 10_000, "windows/s")
    before.save(path)
    now = Figures()
    now.add("c", "(c) drain", 16_000, "records/s")  # 20 % fewer: worse
    now.add("e p99", "(e) p99", 30, "ms", higher_is_better=False)  # 25 % lower: better
    now.add("g", "(g) windows/s", 9_000, "windows/s")  # 10 % fewer: within the noise
    now.add("new", "a new figure", 1, "x")
    lines = now.compared(load(path))
    by_label = {line.split("  ")[1].strip(): line for line in lines[1:]}
    assert by_label["(c) drain"].endswith("was 20,000 records/s, -20%   DROP")
    assert by_label["(e) p99"].endswith("was 40 ms, -25%")
    assert by_label["(g) windows/s"].endswith("was 10,000 windows/s, -10%")
    assert by_label["a new figure"].endswith("(not in the baseline)")


def test_a_partial_run_keeps_the_figures_it_did_not_take(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    full = Figures()
    full.add("c", "(c) drain", 20_000, "records/s")
    full.add("g", "(g) windows/s", 10_000, "windows/s")
    full.save(path)
    metrics_only = Figures()
    metrics_only.add("g", "(g) windows/s", 11_000, "windows/s")
    metrics_only.save(path)
    saved = load(path)
    assert saved is not None
    assert {k: f.value for k, f in saved.figures.items()} == {"c": 20_000, "g": 11_000}
    assert "CPUs" in saved.machine and saved.taken


def test_without_a_baseline_it_says_how_to_make_one(tmp_path: Path) -> None:
    now = Figures()
    now.add("c", "(c) drain", 1, "records/s")
    assert load(tmp_path / "none.json") is None
    assert "--save-baseline" in now.compared(None)[0]


def test_between_machines_of_different_speeds_only_ratios_are_marked(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    fast = Figures(speed=6.0)
    fast.add("c", "(c) drain", 20_000, "records/s")
    fast.add("c/b", "(c) / (b)", 90, "%")
    fast.save(path)
    half_as_fast = Figures(speed=3.0)
    half_as_fast.add("c", "(c) drain", 10_000, "records/s")  # the machine, not the code
    half_as_fast.add("c/b", "(c) / (b)", 70, "%")  # a ratio of one run: still a drop
    lines = half_as_fast.compared(load(path))
    by_label = {line.split("  ")[1].strip(): line for line in lines[1:]}
    assert "DROP" not in by_label["(c) drain"]
    assert by_label["(c) drain"].endswith("(not marked: a machine 0.50 x as fast as the baseline's)")
    assert by_label["(c) / (b)"].endswith("-22%   DROP")
    assert "3.00 M steps/s" in lines[0]
    same_speed = Figures(speed=5.5)
    same_speed.add("c", "(c) drain", 10_000, "records/s")
    assert same_speed.compared(load(path))[1].endswith("-50%   DROP")


def test_the_speed_is_kept_with_each_figure_a_partial_run_saves(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    first = Figures(speed=6.0)
    first.add("c", "(c) drain", 20_000, "records/s")
    first.save(path)
    second = Figures(speed=3.0)
    second.add("g", "(g) windows/s", 5_000, "windows/s")
    second.save(path)
    saved = load(path)
    assert saved is not None
    assert {k: f.speed for k, f in saved.figures.items()} == {"c": 6.0, "g": 3.0}


def test_the_machines_python_speed_is_measured() -> None:
    from bench.machine import python_speed

    assert 0.01 < python_speed(steps=20_000, runs=2) < 10_000  # M steps/s: some machine's, not a fluke
