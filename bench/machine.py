"""How fast this machine runs plain Python, so that the bench's figures are read against committed ones
taken on a machine of the same speed.

Machines of one kind differ: on two 2-core machines of the same type the same code drained 23,839 and
12,000-15,000 records/s through onnxruntime alone, a pure-Python loop took 2.5 times as long on the
slower one, and the metric path (mostly Python) measured a quarter of its speed. Figures in records/s
or ms are then not comparable, while ratios of two figures taken in the same run (`%`) mostly are.
bench/figures.py stores this speed with every figure and marks a drop only between runs of similar
speed (or on ratios).
"""

from __future__ import annotations

import time

STEPS = 1_000_000  # one timed run: about 0.1-0.3 s on the 2-core machines the bench has run on
RUNS = 5


def _steps(n: int) -> int:
    """A mix of what the worker's loop does in Python: arithmetic, a call, a dict and an attribute."""
    seen: dict[int, int] = {}
    total = 0
    for i in range(n):
        total += _twice(i) & 0xFF
        seen[i & 0x3F] = total
        total += len(seen).bit_length()
    return total


def _twice(i: int) -> int:
    return i + i


def python_speed(steps: int = STEPS, runs: int = RUNS) -> float:
    """Millions of the steps above a second: the best of `runs` timings (the least disturbed by other
    work on the machine)."""
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        _steps(steps)
        best = min(best, time.perf_counter() - t0)
    return steps / best / 1e6
