"""The bench's figures beside the last committed ones (bench/baseline.json), so that a regression
shows in the run that makes it: each figure is printed with the committed value and its change, and
a change for the worse of more than DROP is marked. Each figure keeps the Python speed of the machine
that took it (bench/machine.py): between machines whose speeds differ by more than DROP, only ratios
(`%`) are marked, as a drop in records/s there says more about the machine than about the code.

`python -m bench.run --save-baseline` writes this run's figures as the new baseline (commit it with
the code it measured); a partial run (--only) updates only the figures it measured."""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from bench.common import cpus

BASELINE = Path(__file__).with_name("baseline.json")
DROP = 0.15  # a change for the worse beyond this is marked: more than the machine's usual spread


class Figure(BaseModel):
    label: str
    value: float
    unit: str
    higher_is_better: bool = True
    speed: float | None = Field(
        None,
        description="Python speed of the machine that took it (bench/machine.py), M steps/s; "
        "None in figures from before it was recorded",
    )

    @property
    def relative(self) -> bool:
        """A ratio of two figures of one run: comparable between machines of different speeds."""
        return self.unit == "%"


class Baseline(BaseModel):
    """Figures of one bench run, with when and where they were taken."""

    taken: str = Field(description="UTC date and time of the run")
    machine: str = Field(description="CPU count and platform of the machine that ran it")
    figures: dict[str, Figure] = {}


class Figures:
    """The figures of this run, keyed (`c kafka-python`, `h p99`, ...) to find them in the baseline."""

    def __init__(self, speed: float | None = None) -> None:
        self.taken: dict[str, Figure] = {}
        self.speed = speed  # this machine's (bench/machine.py), stored with every figure

    def add(self, key: str, label: str, value: float, unit: str, higher_is_better: bool = True) -> None:
        self.taken[key] = Figure(label=label, value=value, unit=unit, higher_is_better=higher_is_better,
                                 speed=self.speed)  # fmt: skip

    def compared(self, baseline: Baseline | None) -> list[str]:
        """One line per figure: its value, the committed one and the change; DROP marks a regression."""
        if not self.taken:
            return []
        if baseline is None:
            return [f"no committed figures to compare with ({BASELINE.name}): `--save-baseline` writes them"]
        speed = f"; this machine's Python speed {self.speed:.2f} M steps/s" if self.speed else ""
        lines = [f"against the committed figures of {baseline.taken} ({baseline.machine}); a change for "
                 f"the worse beyond {DROP:.0%} is marked DROP{speed}"]  # fmt: skip
        for key, now in self.taken.items():
            before = baseline.figures.get(key)
            line = f"  {now.label:<64}{_value(now):>14}"
            if before is None or before.value == 0:
                lines.append(f"{line}   (not in the baseline)")
                continue
            change = now.value / before.value - 1
            worse = -change if now.higher_is_better else change
            mark = "   DROP" if worse > DROP else ""
            machines = _speeds(now, before)
            if worse > DROP and machines is not None and abs(machines - 1) > DROP and not now.relative:
                mark = f"   (not marked: a machine {machines:.2f} x as fast as the baseline's)"
            lines.append(f"{line}   was {_value(before)}, {change:+.0%}{mark}")
        return lines

    def save(self, path: Path = BASELINE) -> Path:
        """This run's figures over the baseline's (a partial run keeps the figures it did not take)."""
        kept = load(path)
        figures = {**(kept.figures if kept else {}), **self.taken}
        machine = f"{cpus()} CPUs, {platform.machine()}, {platform.system()}"
        taken = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        baseline = Baseline(taken=taken, machine=machine, figures=figures)
        path.write_text(baseline.model_dump_json(indent=1) + "\n")
        return path


def load(path: Path = BASELINE) -> Baseline | None:
    if not path.exists():
        return None
    return Baseline.model_validate(json.loads(path.read_text()))


def _speeds(now: Figure, before: Figure) -> float | None:
    """How fast the machine of `now` ran Python against that of `before` (None: a speed not known)."""
    if not now.speed or not before.speed:
        return None
    return now.speed / before.speed


def _value(f: Figure) -> str:
    return f"{f.value:,.0f} {f.unit}"
