"""A metric alert's evidence: the firing part's numbers (schemas.outputs.Evidence), from its decision.

The detector hands back, for each point, what the part that gave its score measured it against and
that part's unit (schemas/detect/decide.py, `Decisions.reference` and `unit`); this puts them in the
part's own terms and in one sentence an operator can read on a pager.
"""

from __future__ import annotations

import math

from schemas.detect import SEASONS, Decision
from schemas.outputs import Evidence

_PERIOD_NAMES = {period: name for name, (period, _) in SEASONS.items()}
_ADJECTIVE = {"day": "daily", "week": "weekly"}


def evidence(d: Decision, value: float, window_points: int, interval_s: float) -> Evidence:
    """Evidence for the alert of a point of `value`, decided as `d`, whose window held
    `window_points` points on a grid of `interval_s` seconds."""
    ref, unit, part = d.reference, d.unit, d.part
    measured = ref is not None and part not in ("drift", "flat", "vae")
    deviations = _ratio(abs(value - ref), unit) if measured else None
    if part == "drift":
        deviations = d.part_score
    past = window_points - 1  # the median and scale are those of the window's past
    fields: dict[str, object] = dict(part=part, reference=ref, scale=unit if unit and unit > 0 else None,
                                     deviations=deviations)  # fmt: skip
    if part in ("level", "vae", "spike"):
        fields.update(span_points=past, span_s=past * interval_s)
    if part == "season" and d.period_s is not None:
        fields["period"] = _PERIOD_NAMES.get(d.period_s)
    if part == "flat":
        fields.update(run=int(d.part_score), longest_run=int(d.longest_run) if d.longest_run else None)
    fields["summary"] = _summary(d, value, fields, interval_s)
    return Evidence.model_validate(fields)


def _ratio(a: float, b: float | None) -> float | None:
    return a / b if b and b > 0 and math.isfinite(a / b) else None


def _summary(d: Decision, value: float, f: dict[str, object], interval_s: float) -> str:
    ref, unit, dev = f["reference"], f["scale"], f["deviations"]
    v = _num(value)
    if d.part == "flat":
        longest = f"; the longest recent run was {f['longest_run']} points" if f.get("longest_run") else ""
        return (f"{v} has not changed for {f['run']} points ({_span(int(f['run']) * interval_s)})"  # type: ignore[call-overload]
                f"{longest}; a run of {_num(d.part_threshold)} alerts")  # fmt: skip
    if d.part == "spike":
        return (f"{v} is {_num(d.part_score)} from the median {_num(ref)} of the previous "
                f"{f['span_points']} points, over {_num(d.part_threshold / unit if unit else math.nan)}x "
                f"their recent range of {_num(unit)}")  # fmt: skip
    if d.part == "vae":
        return (f"the window's shape: the model's reconstruction error {_num(d.part_score)} against "
                f"{_num(d.part_threshold)} for this series (median of the previous {f['span_points']} "
                f"points {_num(ref)})")  # fmt: skip
    if d.part == "drift":
        return (f"the recent mean has moved {_num(dev)} spreads (of {_num(unit)}) from the long mean "
                f"{_num(ref)}")
    against = {
        "level": f"the median {_num(ref)} of the previous {f.get('span_points')} points "
                 f"({_span(float(f.get('span_s') or 0.0))})",  # type: ignore[arg-type]
        "season": f"{_num(ref)}, the {_ADJECTIVE.get(str(f.get('period')), 'seasonal')} profile's value "
                  "at this time",
        "far": f"the series' long-run level {_num(ref)}",
    }[d.part]
    what = {"level": "robust deviations", "season": "seasonal deviations", "far": "spreads"}[d.part]
    return f"{v} is {_num(dev)} {what} (of {_num(unit)}) from {against}"


def _num(x: object) -> str:
    if not isinstance(x, int | float) or not math.isfinite(x):
        return "?"
    return f"{x:.4g}" if abs(x) < 1e6 else f"{x:.3e}"


def _span(seconds: float) -> str:
    for unit, size in (("d", 86_400.0), ("h", 3_600.0), ("min", 60.0)):
        if seconds >= 2 * size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"
