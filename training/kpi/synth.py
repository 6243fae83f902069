"""Labelled synthetic KPI series: seasonality, trend and noise, with injected anomalies of known kinds.

For demos and tests of the metric path; real KPI data is what the model is built for.
Anomalies are windows labelled 1 on every point, each point with the kind that made it.

Profiles (`--profile`):

  stationary     (the default; the demo and the tests) a regular grid (`interval_minutes`) of
                 `days` days; one level, a fixed daily and weekly sine, a small linear trend,
                 Gaussian noise of one size. `generate_series` / `synthesize`. Kinds:

    spike          a few points far above the series
    dip            a few points far below it
    level_shift    the level moves and stays moved for hours
    variance       the noise grows several-fold for hours
    flatline       the value sticks (a stuck sensor) for hours
    drift          a slow ramp away from normal over hours

  nonstationary  (the tuning set) normal behaviour that moves the way real KPIs do: slow
                 level drift and trends, noise that grows and shrinks, daily cycles whose
                 shape, size and phase wander, weekends, normal heavy-tailed bursts, scales from
                 counts near zero to millions; timestamps with jitter, dropped points and
                 multi-hour gaps. Each series has a personality (PERSONALITIES):

    seasonal       a smooth seasonal metric (web traffic, CPU): daily and weekly cycles, noise
                   that grows with load
    counts         Poisson-like integers near zero (errors, tweets on a topic): many zeros at
                   night, overdispersion, small normal bursts
    latency        random-walk-ish (in log) with calm and congested regimes that change the
                   noise and nudge the level, right-skewed noise
    sensor         temperature-like: slow weather drift, a daily cycle whose size follows the
                   weather, smooth (autocorrelated) noise quantised to the sensor's resolution
    bursty         traffic with heavy-tailed noise and frequent normal bursts (retry storms)

                 None of those changes is labelled: they are slow (a day or more), or eased over
                 hours, or bounded, and a good detector must not alarm on them. What is labelled
                 (NONSTATIONARY_KINDS) is abrupt or fast:

    spike, dip     1-3 points 9-16 local noise units away (a dip only where the series has room)
    level_shift    an abrupt step of 5-10 units (counts: the rate x2.5-5 or /2.5-5) whose new
                   level PERSISTS to the end; only the onset and 0.5-2 h after it are labelled,
                   the new level is normal afterwards
    variance       noise x3-6 for 1-3 h (counts: a burst of overdispersion)
    flatline       the value sticks for 1-3 h; count series stick at zero (where >= 10 counts
                   were expected)
    drift          a fast ramp of 8-15 units over 1-4 h that then returns (inside the window)
    trend_change   the slope changes for 3-8 h (6-12 units in all; counts: a rate x2-4 or
                   /2-4), the new level persists
    seasonality_break  the daily cycle goes missing or inverts for 6-12 h (eased in and out)

                 `tuning_config`, `generate_set`, `generate_nonstationary_series`.

  clean          five signals with nothing to find (`clean_signals`): a noise-free daily sine, a
                 square wave, a constant, white noise and a random walk, labelled 0 everywhere. A
                 detector must stay quiet on them (`--series` is ignored: there are five).

  heldout        `heldout_config()`: the same generator with its own seed and parameters (other
                 personality mixture, 35 days, intervals of 1, 5, 10 and 60 minutes mixed, a
                 higher anomaly rate, more jitter and gaps). It is never used for tuning:
                 report it on its own line. `write_tuning_and_heldout` writes both sets.

Non-stationary sets also write `series.json` beside `kpi.csv`: each series' personality and
interval (the loader reads only *.csv, so the folder still loads).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

KINDS = ("spike", "dip", "level_shift", "variance", "flatline", "drift")
START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, so weekly seasonality starts at a week start


@dataclass(frozen=True)
class SynthSeries:
    name: str
    timestamps: list[datetime]
    values: np.ndarray  # float64
    labels: np.ndarray  # 1 = anomalous point
    kinds: list[str]  # anomaly kind per point, "" for normal points
    personality: str = "stationary"  # the non-stationary profile's kind of series (PERSONALITIES)
    interval_minutes: int | None = None  # the grid under the jitter (non-stationary series only)


def generate_series(
    name: str, days: int, rng: np.random.Generator, interval_minutes: int = 5, anomalies_per_week: float = 6.0
) -> SynthSeries:
    per_day = 24 * 60 // interval_minutes
    n = days * per_day
    t = np.arange(n)
    level = rng.uniform(50, 500)
    daily = rng.uniform(0.1, 0.4) * level * np.sin(2 * np.pi * t / per_day - rng.uniform(0, 2 * np.pi))
    weekly = rng.uniform(0.0, 0.15) * level * np.sin(2 * np.pi * t / (7 * per_day))
    trend = rng.uniform(-0.1, 0.1) * level * t / n
    noise_sd = rng.uniform(0.02, 0.06) * level
    values = level + daily + weekly + trend + rng.normal(0, noise_sd, n)
    labels = np.zeros(n, dtype=np.int8)
    kinds = [""] * n
    n_anomalies = rng.poisson(anomalies_per_week * days / 7)
    warmup = per_day  # the first day stays normal, so a model or baseline has history
    for _ in range(n_anomalies):
        kind = KINDS[rng.integers(len(KINDS))]
        length = rng.integers(1, 4) if kind in ("spike", "dip") else rng.integers(per_day // 12, per_day // 3)
        start = int(rng.integers(warmup, max(warmup + 1, n - length)))
        end = min(n, start + int(length))
        if labels[max(0, start - 12) : end + 12].any():
            continue  # keep anomalies apart, so each label window has one kind
        _inject(values, start, end, kind, noise_sd, level, rng)
        labels[start:end] = 1
        for i in range(start, end):
            kinds[i] = kind
    timestamps = [START + timedelta(minutes=interval_minutes * int(i)) for i in t]
    return SynthSeries(name, timestamps, values, labels, kinds)


def _inject(
    values: np.ndarray, start: int, end: int, kind: str, sd: float, level: float, rng: np.random.Generator
) -> None:
    span = end - start
    if kind == "spike":
        values[start:end] += rng.uniform(8, 14) * sd
    elif kind == "dip":
        values[start:end] -= rng.uniform(8, 14) * sd
    elif kind == "level_shift":
        values[start:end] += rng.choice([-1, 1]) * rng.uniform(0.15, 0.3) * level
    elif kind == "variance":
        values[start:end] += rng.normal(0, sd * rng.uniform(3, 6), span)
    elif kind == "flatline":
        values[start:end] = values[start]
    elif kind == "drift":
        values[start:end] += rng.choice([-1, 1]) * np.linspace(0, rng.uniform(0.2, 0.4) * level, span)
    else:
        raise ValueError(f"unknown anomaly kind {kind!r}")


def write_long_csv(series: list[SynthSeries], path: Path) -> int:
    """One long file `series,timestamp,value,label,kind`; returns the number of rows."""
    rows = 0
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["series", "timestamp", "value", "label", "kind"])
        for s in series:
            for ts, v, lab, kind in zip(s.timestamps, s.values, s.labels, s.kinds, strict=True):
                out.writerow([s.name, ts.isoformat().replace("+00:00", "Z"), f"{v:.6g}", int(lab), kind])
                rows += 1
    return rows


def synthesize(
    out: Path,
    n_series: int,
    days: int,
    seed: int,
    interval_minutes: int = 5,
    profile: str = "stationary",
    anomalies_per_week: float | None = None,
) -> Path:
    """Write `<out>/kpi.csv` with `n_series` series; refuses to overwrite.

    `profile` is "stationary" (the default) or "nonstationary" (the tuning set); the held-out
    set has fixed parameters: `write_set(out, heldout_config())`.
    """
    if n_series < 1 or days < 2:
        raise ValueError("--series must be >= 1 and --days >= 2 (the first day is kept normal)")
    if profile == "nonstationary":
        per_week = NONSTATIONARY_ANOMALIES_PER_WEEK if anomalies_per_week is None else anomalies_per_week
        return write_set(out, tuning_config(n_series, days, seed, interval_minutes, per_week))
    if profile == "clean":
        return write_clean(out, days, interval_minutes, seed)
    if profile != "stationary":
        raise ValueError(
            f"unknown profile {profile!r}; use stationary, nonstationary or clean (heldout is a preset)"
        )
    path = _new_csv(out)
    rng = np.random.default_rng(seed)
    per_week = 6.0 if anomalies_per_week is None else anomalies_per_week  # generate_series' own default
    series = [generate_series(f"kpi_{i:04d}", days, rng, interval_minutes, per_week) for i in range(n_series)]
    write_long_csv(series, path)
    return path


CLEAN_SIGNALS = ("sine", "square", "constant", "white_noise", "random_walk")


def clean_signals(days: int, interval_s: float = 300.0, seed: int = 0) -> dict[str, np.ndarray]:
    """Signals with nothing to find (issue: quiet on clean signals): a noise-free daily sine, a daily
    square wave, a constant, white noise and a random walk, `days` days at `interval_s`."""
    n = int(days * 86_400 / interval_s)
    t = np.arange(n) * interval_s / 86_400.0  # days
    rng = np.random.default_rng(seed)
    return {
        "sine": 50.0 + 20.0 * np.sin(2 * np.pi * t),
        "square": np.where(t % 1.0 < 0.5, 10.0, 30.0),
        "constant": np.full(n, 42.0),
        "white_noise": rng.normal(100.0, 5.0, n),
        "random_walk": 1000.0 + np.cumsum(rng.normal(0.0, 1.0, n)),
    }


def write_clean(out: Path, days: int, interval_minutes: int, seed: int) -> Path:
    """`<out>/kpi.csv` of the clean signals (label 0 everywhere): what a detector must stay quiet on."""
    path = _new_csv(out)
    values = clean_signals(days, interval_minutes * 60.0, seed)
    series = []
    for name, v in values.items():
        stamps = [START + timedelta(minutes=interval_minutes * i) for i in range(len(v))]
        series.append(SynthSeries(name, stamps, v, np.zeros(len(v), np.int8), [""] * len(v), "clean",
                                  interval_minutes))  # fmt: skip
    write_long_csv(series, path)
    return path


def _new_csv(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "kpi.csv"
    if path.exists():
        raise FileExistsError(f"{path} already exists; pick another --out or delete it")
    return path


# ---------------------------------------------------------------------------------------------------
# The non-stationary profile

NONSTATIONARY_KINDS = (*KINDS, "trend_change", "seasonality_break")
PERSONALITIES = ("seasonal", "counts", "latency", "sensor", "bursty")
# Realised (some draws do not fit): about 1.4 windows per series and week, 2 % of points labelled.
NONSTATIONARY_ANOMALIES_PER_WEEK = 1.5
HELDOUT_SEED = 918_273

# Window lengths in hours; spikes and dips are 1-3 points whatever the interval.
_HOURS = {
    "level_shift": (0.5, 2.0),  # the onset and a little after: the new level itself is normal
    "variance": (1.0, 3.0),
    "flatline": (1.0, 3.0),
    "drift": (1.0, 4.0),
    "trend_change": (3.0, 8.0),
    "seasonality_break": (6.0, 12.0),
}


@dataclass(frozen=True)
class NonstationaryConfig:
    """One generated set: how many series, how long, and the mixtures each series is drawn from."""

    seed: int = 0
    n_series: int = 10
    days: int = 28
    intervals: tuple[tuple[int, float], ...] = ((5, 1.0),)  # (minutes, weight)
    personalities: tuple[tuple[str, float], ...] = (
        ("seasonal", 0.3),
        ("counts", 0.2),
        ("latency", 0.2),
        ("sensor", 0.15),
        ("bursty", 0.15),
    )
    anomalies_per_week: float = NONSTATIONARY_ANOMALIES_PER_WEEK
    jitter_share: float = 0.5  # share of series whose timestamps jitter
    jitter: float = 0.15  # the most a timestamp moves, as a fraction of the interval (< 0.5)
    drop_rate: float = 0.01  # mean share of single points lost; each series draws 0-2x this
    gaps_per_week: float = 0.3  # multi-hour outages per series and week
    gap_hours: tuple[float, float] = (2.0, 12.0)
    prefix: str = "kpi"  # series names: <prefix>_0000, ...


def tuning_config(
    n_series: int = 10,
    days: int = 28,
    seed: int = 0,
    interval_minutes: int = 5,
    anomalies_per_week: float = NONSTATIONARY_ANOMALIES_PER_WEEK,
) -> NonstationaryConfig:
    """The tuning set: every series at one interval, the default personality mixture."""
    return NonstationaryConfig(
        seed=seed,
        n_series=n_series,
        days=days,
        intervals=((interval_minutes, 1.0),),
        anomalies_per_week=anomalies_per_week,
    )


def heldout_config() -> NonstationaryConfig:
    """The held-out set: never used for tuning; report it on its own line.

    Everything a tuned detector could have fitted differs: the seed, the personality mixture
    (more counts, sensors and bursty traffic), the length, mixed intervals, the anomaly rate,
    and more jitter, drops and longer gaps.
    """
    return NonstationaryConfig(
        seed=HELDOUT_SEED,
        n_series=24,
        days=35,
        intervals=((5, 0.5), (1, 0.15), (10, 0.15), (60, 0.2)),
        personalities=(
            ("seasonal", 0.15),
            ("counts", 0.3),
            ("latency", 0.15),
            ("sensor", 0.2),
            ("bursty", 0.2),
        ),
        anomalies_per_week=2.0,
        jitter_share=0.7,
        jitter=0.25,
        drop_rate=0.02,
        gaps_per_week=0.5,
        gap_hours=(1.0, 24.0),
        prefix="heldout",
    )


def generate_set(cfg: NonstationaryConfig) -> list[SynthSeries]:
    """The series of one configuration; series i depends only on (seed, i), not on how many there are."""
    if cfg.n_series < 1 or cfg.days < 2:
        raise ValueError("a set needs >= 1 series of >= 2 days (the first day is kept normal)")
    minutes, minute_weights = zip(*cfg.intervals, strict=True)
    kinds, kind_weights = zip(*cfg.personalities, strict=True)
    out = []
    for i in range(cfg.n_series):
        rng = np.random.default_rng([cfg.seed, i])
        interval = int(rng.choice(minutes, p=_normalised(minute_weights)))
        personality = str(rng.choice(kinds, p=_normalised(kind_weights)))
        jitter = cfg.jitter if rng.random() < cfg.jitter_share else 0.0
        out.append(
            generate_nonstationary_series(
                f"{cfg.prefix}_{i:04d}",
                cfg.days,
                rng,
                interval,
                cfg.anomalies_per_week,
                personality,
                jitter=jitter,
                drop_rate=cfg.drop_rate * rng.uniform(0, 2),
                gaps_per_week=cfg.gaps_per_week,
                gap_hours=cfg.gap_hours,
            )
        )
    return out


def write_set(out: Path, cfg: NonstationaryConfig) -> Path:
    """Write `<out>/kpi.csv` and `<out>/series.json` (personality and interval per series); refuses to
    overwrite."""
    path = _new_csv(out)
    series = generate_set(cfg)
    write_long_csv(series, path)
    meta = {s.name: {"personality": s.personality, "interval_minutes": s.interval_minutes} for s in series}
    (out / "series.json").write_text(json.dumps(meta, indent=1) + "\n")
    return path


def write_tuning_and_heldout(
    out: Path, n_series: int = 20, days: int = 28, seed: int = 0, interval_minutes: int = 5
) -> tuple[Path, Path]:
    """`<out>/tuning/kpi.csv` (tune on this) and `<out>/heldout/kpi.csv` (report on its own line)."""
    tuning = write_set(out / "tuning", tuning_config(n_series, days, seed, interval_minutes))
    return tuning, write_set(out / "heldout", heldout_config())


def _normalised(weights: tuple[float, ...]) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"mixture weights must be >= 0 with a positive sum, got {weights}")
    return w / w.sum()


def anomaly_windows(labels: np.ndarray, kinds: list[str]) -> list[tuple[int, int, str]]:
    """(start, end, kind) of each run of labelled points of one kind, end exclusive."""
    out: list[tuple[int, int, str]] = []
    for i, (lab, kind) in enumerate(zip(labels, kinds, strict=True)):
        if not lab:
            continue
        if out and out[-1][1] == i and out[-1][2] == kind:
            out[-1] = (out[-1][0], i + 1, kind)
        else:
            out.append((i, i + 1, kind))
    return out


@dataclass
class _Normal:
    """A series' normal behaviour in parts, so an anomaly can change the part it is about."""

    level: np.ndarray  # the slow part of the mean: base, drift, trend, weekends
    seasonal: np.ndarray  # the daily cycle on top of the level
    sd: np.ndarray  # local noise scale (counts: unused, the Poisson draw is the noise)
    noise: np.ndarray  # unit noise, drawn before anomalies so that placing them reshuffles nothing
    extra: np.ndarray  # normal bursts, in value units
    counts: bool = False
    floor: float | None = None
    quantum: float = 0.0  # the sensor's resolution; 0 = none
    dispersion: np.ndarray = field(default_factory=lambda: np.empty(0))  # counts: gamma shape of the rate

    def mean(self) -> np.ndarray:
        return self.level + self.seasonal + self.extra


def generate_nonstationary_series(
    name: str,
    days: int,
    rng: np.random.Generator,
    interval_minutes: int = 5,
    anomalies_per_week: float = NONSTATIONARY_ANOMALIES_PER_WEEK,
    personality: str | None = None,
    *,
    jitter: float = 0.0,
    drop_rate: float = 0.0,
    gaps_per_week: float = 0.0,
    gap_hours: tuple[float, float] = (2.0, 12.0),
) -> SynthSeries:
    """One non-stationary series (a random personality unless given); lost points are absent."""
    if interval_minutes < 1 or 1440 % interval_minutes:
        raise ValueError(f"interval_minutes must divide a day (1, 5, 10, 60, ...), got {interval_minutes}")
    if not 0 <= jitter < 0.5:
        raise ValueError(f"jitter must be in [0, 0.5) of the interval (slots stay distinct), got {jitter}")
    per_day = 1440 // interval_minutes
    n = days * per_day
    if personality is None:
        personality = PERSONALITIES[rng.integers(len(PERSONALITIES))]
    if personality not in _MAKERS:
        raise ValueError(f"unknown personality {personality!r}; use one of {', '.join(PERSONALITIES)}")
    parts = _MAKERS[personality](n, per_day, interval_minutes, rng)
    labels, kinds, flatlines = _place_anomalies(parts, per_day, days, anomalies_per_week, rng)
    values = _realise(parts, rng)
    for start, end in flatlines:
        values[start:end] = 0.0 if parts.counts else values[start - 1]
    keep = np.flatnonzero(_kept(labels, per_day, drop_rate, gaps_per_week, gap_hours, rng))
    on_grid = np.arange(n, dtype=np.int64) * interval_minutes * 60
    seconds = on_grid + _jitter_seconds(n, interval_minutes, jitter, rng)
    timestamps = [START + timedelta(seconds=int(seconds[i])) for i in keep]
    kept_kinds = [kinds[i] for i in keep]
    return SynthSeries(
        name, timestamps, values[keep], labels[keep], kept_kinds, personality, interval_minutes
    )


# --- slow processes: every normal change is slow, eased or bounded by construction


def _walk(n: int, every: int, step_sd: float, rng: np.random.Generator) -> np.ndarray:
    """A random walk on knots `every` points apart, straight lines between them."""
    every = max(1, every)
    k = n // every + 2
    knots = np.concatenate([[0.0], np.cumsum(rng.normal(0, step_sd, k - 1))])
    return np.interp(np.arange(n) / every, np.arange(k), knots)


def _wander(n: int, every: int, sd: float, rng: np.random.Generator) -> np.ndarray:
    """Independent knots `every` points apart, straight lines between: a bounded slow wobble."""
    every = max(1, every)
    k = n // every + 2
    return np.interp(np.arange(n) / every, np.arange(k), rng.normal(0, sd, k))


def _ease(x: np.ndarray, width: int) -> np.ndarray:
    """A moving average (edges padded with the edge value): steps become ramps `width` points long."""
    if width <= 1:
        return x.astype(np.float64)
    padded = np.pad(x.astype(np.float64), (width // 2, width - 1 - width // 2), mode="edge")
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def _daily_cycle(n: int, per_day: int, rng: np.random.Generator, harmonics: int = 3) -> np.ndarray:
    """A daily cycle scaled to a peak of 1 whose shape (harmonic mix) and phase wander over the weeks."""
    days = np.arange(n) / per_day
    shift_hours = rng.uniform(0, 24) + _walk(n, per_day, rng.uniform(0.05, 0.3), rng)
    phase = 2 * np.pi * (days + shift_hours / 24)
    cycle = np.zeros(n)
    for k in range(1, harmonics + 1):
        size = 1.0 if k == 1 else rng.uniform(0, 0.5) / k
        a = size * rng.normal(1.0, 0.1) + _wander(n, 7 * per_day, 0.25 * size, rng)
        b = _wander(n, 7 * per_day, 0.4 * size, rng)
        cycle += a * np.cos(k * phase) + b * np.sin(k * phase)
    return cycle / np.abs(cycle).max()


def _weekend_factor(n: int, per_day: int, depth: float) -> np.ndarray:
    """1 on weekdays and 1 - depth at weekends (START is a Monday), eased over six hours."""
    weekend = (np.arange(n) // per_day) % 7 >= 5
    return 1.0 - depth * _ease(weekend, per_day // 4)


def _regimes(n: int, per_day: int, rng: np.random.Generator) -> np.ndarray:
    """Calm (0) and congested (1) stretches of random length, eased over 3-8 hours."""
    state = np.zeros(n)
    i, busy = 0, False
    while i < n:
        length = max(1, int(rng.exponential(0.7 if busy else 2.5) * per_day))
        state[i : i + length] = busy
        i, busy = i + length, not busy
    return _ease(state, int(rng.uniform(3, 8) * per_day / 24))


def _bursts(
    n: int,
    per_day: int,
    interval_minutes: int,
    per_day_rate: float,
    size: tuple[float, float],
    decay_minutes: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Normal bursts (retry storms, a post going viral): a Pareto-sized jump decaying exponentially."""
    impulses = np.zeros(n)
    count = rng.poisson(per_day_rate * n / per_day)
    np.add.at(
        impulses, rng.integers(0, n, count), np.minimum(size[0] * (1 + rng.pareto(2.0, count)), size[1])
    )
    tau = max(1.0, decay_minutes / interval_minutes)
    return np.convolve(impulses, np.exp(-np.arange(int(5 * tau) + 1) / tau))[:n]


# --- noise


def _ar1(n: int, phi: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance AR(1) noise, by a truncated exponential filter (numpy has no recursive filter)."""
    if phi <= 0.01:
        return rng.standard_normal(n)
    taps = int(np.ceil(np.log(1e-3) / np.log(phi)))
    e = rng.standard_normal(n + taps)  # the extra head lets the filter settle before point 0
    return np.convolve(e, phi ** np.arange(taps))[taps : n + taps] * np.sqrt(1 - phi**2)


def _heavy(n: int, df: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance Student-t noise, clipped at 8: tails real traffic has, without absurd outliers."""
    return np.clip(rng.standard_t(df, n) / np.sqrt(df / (df - 2)), -8, 8)


def _skewed(n: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean unit-variance lognormal noise: latency's long right tail."""
    raw = np.exp(sigma * rng.standard_normal(n))
    return (raw - np.exp(sigma**2 / 2)) / np.sqrt((np.exp(sigma**2) - 1) * np.exp(sigma**2))


# --- personalities: (points, points per day, interval in minutes, rng) -> normal behaviour


def _seasonal(n: int, per_day: int, interval: int, rng: np.random.Generator) -> _Normal:
    base = 10 ** rng.uniform(1, 4.5)
    trend = rng.uniform(-0.25, 0.25) * np.arange(n) / n
    slow = base * np.maximum(1 + _walk(n, per_day, rng.uniform(0.01, 0.03), rng) + trend, 0.2)
    level = slow * _weekend_factor(n, per_day, rng.uniform(0, 0.3))
    amp = np.minimum(rng.uniform(0.2, 0.6) * np.exp(_wander(n, 3 * per_day, 0.15, rng)), 0.9)
    seasonal = level * amp * _daily_cycle(n, per_day, rng)
    # Noise grows with load (busy hours are noisier) and wanders on its own over days.
    load = np.sqrt(np.maximum(level + seasonal, 0.05 * base) / base)
    sd = base * rng.uniform(0.01, 0.04) * load * np.exp(_wander(n, 2 * per_day, 0.35, rng))
    noise = _ar1(n, rng.uniform(0, 0.6) ** (interval / 5), rng)
    return _Normal(level, seasonal, sd, noise, np.zeros(n), floor=0.0)


def _counts(n: int, per_day: int, interval: int, rng: np.random.Generator) -> _Normal:
    rate = 10 ** rng.uniform(-1.0, 0.3) * interval / 5  # events per interval at the daily mean
    trend = rng.uniform(-0.5, 0.5) * np.arange(n) / n
    level = (
        rate
        * np.exp(_walk(n, per_day, rng.uniform(0.05, 0.15), rng) + trend)
        * _weekend_factor(n, per_day, rng.uniform(0, 0.5))
    )
    swing = np.exp(rng.uniform(0.6, 1.6) * _daily_cycle(n, per_day, rng))  # quiet nights: many zeros
    seasonal = level * (swing / swing.mean() - 1)
    extra = level * _bursts(n, per_day, interval, rng.uniform(0.2, 1.0), (1.5, 6.0), rng.uniform(20, 90), rng)
    dispersion = np.full(n, rng.uniform(2, 10))
    unused = np.zeros(n)  # the Poisson draw is the noise
    return _Normal(level, seasonal, unused, unused, extra, counts=True, floor=0.0, dispersion=dispersion)


def _latency(n: int, per_day: int, interval: int, rng: np.random.Generator) -> _Normal:
    base = 10 ** rng.uniform(0.7, 3)  # milliseconds
    trend = rng.uniform(-0.2, 0.2) * np.arange(n) / n
    drift = np.exp(_walk(n, per_day // 12, rng.uniform(0.02, 0.035), rng) + trend)  # a knot every 2 h
    busy = _regimes(n, per_day, rng)
    sd0 = base * rng.uniform(0.03, 0.08)
    level = base * drift + rng.uniform(0.5, 2.0) * sd0 * busy
    seasonal = base * drift * rng.uniform(0, 0.15) * _daily_cycle(n, per_day, rng, harmonics=2)
    sd = sd0 * drift * (1 + rng.uniform(0.8, 2.0) * busy) * np.exp(_wander(n, 2 * per_day, 0.2, rng))
    return _Normal(level, seasonal, sd, _skewed(n, rng.uniform(0.3, 0.7), rng), np.zeros(n), floor=0.0)


def _sensor(n: int, per_day: int, interval: int, rng: np.random.Generator) -> _Normal:
    base = rng.uniform(-5, 35)  # degrees
    level = base + _walk(n, per_day // 2, rng.uniform(0.3, 0.8), rng) + rng.uniform(-3, 3) * np.arange(n) / n
    amp = rng.uniform(0.5, 4.0) * np.exp(_wander(n, per_day, 0.4, rng))  # cloudy days swing less
    seasonal = amp * _daily_cycle(n, per_day, rng, harmonics=2)
    sd0 = rng.uniform(0.05, 0.3)
    sd = sd0 * np.exp(_wander(n, 2 * per_day, 0.35, rng))
    noise = _ar1(n, rng.uniform(0.85, 0.97) ** (interval / 5), rng)
    return _Normal(level, seasonal, sd, noise, np.zeros(n), quantum=0.1 if sd0 >= 0.1 else 0.01)


def _bursty(n: int, per_day: int, interval: int, rng: np.random.Generator) -> _Normal:
    base = 10 ** rng.uniform(2, 6)
    trend = rng.uniform(-0.3, 0.3) * np.arange(n) / n
    slow = base * np.exp(_walk(n, per_day, rng.uniform(0.03, 0.08), rng) + trend)
    level = slow * _weekend_factor(n, per_day, rng.uniform(0, 0.3))
    seasonal = level * rng.uniform(0.1, 0.5) * _daily_cycle(n, per_day, rng)
    sd = (
        base * rng.uniform(0.02, 0.06) * np.sqrt(slow / base) * np.exp(_wander(n, 3 * per_day // 2, 0.4, rng))
    )
    noise = _heavy(n, rng.uniform(3, 6), rng)
    extra = sd * _bursts(n, per_day, interval, rng.uniform(1, 4), (2.0, 7.0), rng.uniform(10, 60), rng)
    return _Normal(level, seasonal, sd, noise, extra, floor=0.0)


_MAKERS: dict[str, Callable[[int, int, int, np.random.Generator], _Normal]] = {
    "seasonal": _seasonal,
    "counts": _counts,
    "latency": _latency,
    "sensor": _sensor,
    "bursty": _bursty,
}


# --- anomalies


def _place_anomalies(
    parts: _Normal, per_day: int, days: int, per_week: float, rng: np.random.Generator
) -> tuple[np.ndarray, list[str], list[tuple[int, int]]]:
    n = parts.level.size
    labels = np.zeros(n, dtype=np.int8)
    kinds = [""] * n
    flatlines: list[tuple[int, int]] = []
    apart = max(12, per_day // 4)  # six hours between windows, so each window has one kind
    for _ in range(rng.poisson(per_week * (days - 1) / 7)):  # the first day stays normal history
        for _attempt in range(10):  # a kind that does not fit a place (a dip below zero) tries again
            kind = NONSTATIONARY_KINDS[rng.integers(len(NONSTATIONARY_KINDS))]
            length = _window_length(kind, per_day, rng)
            if n - length <= per_day:
                break
            start = int(rng.integers(per_day, n - length))
            end = start + length
            if labels[max(0, start - apart) : end + apart].any():
                continue
            if _inject_nonstationary(parts, start, end, kind, per_day, rng, flatlines):
                labels[start:end] = 1
                kinds[start:end] = [kind] * length
                break
    return labels, kinds, flatlines


def _window_length(kind: str, per_day: int, rng: np.random.Generator) -> int:
    if kind in ("spike", "dip"):
        return int(rng.integers(1, 4))
    lo, hi = _HOURS[kind]
    return max(3, round(rng.uniform(lo, hi) * per_day / 24))


def _inject_nonstationary(
    parts: _Normal,
    start: int,
    end: int,
    kind: str,
    per_day: int,
    rng: np.random.Generator,
    flatlines: list[tuple[int, int]],
) -> bool:
    """Change the part of the normal behaviour the anomaly is about; False where it does not fit."""
    mean = parts.mean()
    span = end - start
    # Sizes are in local noise units; a count's unit is its Poisson sd, at least 1 event.
    unit = (
        np.sqrt(max(mean[start:end].mean(), 1.0)) if parts.counts else float(np.median(parts.sd[start:end]))
    )
    floor = -np.inf if parts.floor is None else parts.floor
    room = float(mean[start:end].min() - floor)  # how far down it can go here
    room_after = float(np.percentile(mean[start:], 5) - floor)  # ... and for good, for persistent changes
    if kind == "spike":
        parts.level[start:end] += rng.uniform(9, 16) * unit
    elif kind == "dip":
        if room < 6 * unit:
            return False
        parts.level[start:end] -= min(rng.uniform(9, 16) * unit, room)
    elif kind == "level_shift":
        if parts.counts:
            _count_shift(parts, start, 0, (2.5, 5.0), per_day, rng)
            return True
        size = rng.uniform(5, 10) * unit
        parts.level[start:] += size * _direction(room_after, size, rng)
    elif kind == "variance":
        if parts.counts:
            if mean[start:end].mean() < 2:
                return False
            parts.dispersion[start:end] = rng.uniform(0.2, 0.5)
        else:
            parts.sd[start:end] *= rng.uniform(3, 6)
    elif kind == "flatline":
        if parts.counts and mean[start:end].sum() < 10:
            return False  # zeros where few were expected are normal
        flatlines.append((start, end))
    elif kind == "drift":
        size = rng.uniform(8, 15) * unit
        size *= _direction(room, size, rng)
        away = max(1, int(0.8 * span))  # ramp away, then come back inside the window
        parts.level[start : start + away] += np.linspace(0, size, away)
        parts.level[start + away : end] += np.linspace(size, 0, end - start - away)
    elif kind == "trend_change":
        if parts.counts:
            _count_shift(parts, start, span, (2.0, 4.0), per_day, rng)
            return True
        size = rng.uniform(6, 12) * unit
        size *= _direction(room_after, size, rng)
        parts.level[start:end] += np.linspace(0, size, span)
        parts.level[end:] += size
    elif kind == "seasonality_break":
        if np.ptp(parts.seasonal[start:end]) < 6 * unit:
            return False  # a cycle lost in the noise cannot visibly break
        factor = rng.choice([0.0, -1.0])  # missing, or inverted
        edge = max(1, span // 7)
        taper = np.minimum(1.0, np.minimum(np.arange(1, span + 1), np.arange(span, 0, -1)) / edge)
        parts.seasonal[start:end] *= 1 + (factor - 1) * taper
    else:
        raise ValueError(f"unknown anomaly kind {kind!r}")
    return True


def _count_shift(
    parts: _Normal,
    start: int,
    ramp: int,
    factors: tuple[float, float],
    per_day: int,
    rng: np.random.Generator,
) -> None:
    """A count series' rate changes by a factor from `start` on, reached over `ramp` points (0: a step).

    A factor keeps the daily shape and the quiet nights' zeros. The direction is pulled back
    towards the first day's rate, so that counts stay counts near zero instead of climbing (or
    vanishing) with every shift.
    """
    ahead = float(parts.mean()[start : start + per_day].mean())
    history = float(parts.mean()[:per_day].mean())  # the first day is normal by construction
    factor = rng.uniform(*factors)
    if ahead >= 2 * history or (ahead > 0.5 * history and rng.random() < 0.5):
        factor = 1 / factor
    profile = np.ones(parts.level.size - start)
    profile[:ramp] = np.linspace(0, 1, ramp)
    for part in (parts.level, parts.seasonal, parts.extra):
        part[start:] *= 1 + (factor - 1) * profile


def _direction(room: float, size: float, rng: np.random.Generator) -> float:
    """Down half of the time, where the series has room to go down by `size` (twice over); else up."""
    return -1.0 if rng.random() < 0.5 and room >= 2 * size else 1.0


def _realise(parts: _Normal, rng: np.random.Generator) -> np.ndarray:
    mean = parts.mean()
    if parts.counts:
        rate = np.maximum(mean, 0.0) * rng.gamma(parts.dispersion, 1 / parts.dispersion)
        return rng.poisson(rate).astype(np.float64)
    values = mean + parts.sd * parts.noise
    if parts.floor is not None:
        values = np.maximum(values, parts.floor)
    if parts.quantum:
        values = np.round(values / parts.quantum) * parts.quantum
    return values


# --- timestamps


def _kept(
    labels: np.ndarray,
    per_day: int,
    drop_rate: float,
    gaps_per_week: float,
    gap_hours: tuple[float, float],
    rng: np.random.Generator,
) -> np.ndarray:
    """Which points the collector delivered: random single drops and a few multi-hour outages.

    Labelled points are never lost: a window nobody can see is a label no detector can earn.
    """
    n = labels.size
    keep = np.ones(n, dtype=bool)
    if drop_rate > 0:
        keep &= (rng.random(n) >= drop_rate) | (labels == 1)
    if gaps_per_week > 0:
        margin = max(3, per_day // 48)
        for _ in range(rng.poisson(gaps_per_week * n / (7 * per_day))):
            length = max(2, round(rng.uniform(*gap_hours) * per_day / 24))
            if n - length <= per_day:
                continue
            start = int(rng.integers(per_day, n - length))
            if not labels[max(0, start - margin) : start + length + margin].any():
                keep[start : start + length] = False
    return keep


def _jitter_seconds(n: int, interval_minutes: int, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """Whole-second offsets of at most `jitter` intervals: collectors fire late or early, never in step."""
    if jitter <= 0:
        return np.zeros(n, dtype=np.int64)
    return np.rint(rng.uniform(-jitter, jitter, n) * interval_minutes * 60).astype(np.int64)
