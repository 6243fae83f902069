"""KPI series: CSV -> windows -> fit -> export + parity -> calibrate on the graph's scores -> evaluate
(beside the classic detectors) -> report -> manifest, the core's steps (training.core.steps).

Calibration and evaluation score the exported graph with plain onnxruntime, as the worker
will, so the figures in the manifest are the bundle's, not the torch model's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from schemas import (
    MODEL_FILE,
    Calibration,
    MetricPreprocessing,
    ModelManifest,
    ScoreSpec,
    SeriesStats,
    TensorSpec,
)
from schemas.detect import DetectorParams, StateFile
from schemas.repository import refuse_existing
from schemas.timeseries import detect_interval, off_grid
from training.core.bundle import new_manifest, read_manifest, store_reevaluation
from training.core.calibrate import score_summary
from training.core.onnx_scoring import cpu_session
from training.core.steps import write_bundle
from training.kpi.band import BandCoverage, band_coverage
from training.kpi.evaluate import (
    Detection,
    DetectorReport,
    evaluate,
    format_comparison,
    nothing_to_compare,
    report,
)
from training.kpi.load import LoadedData, RawSeries, load_csv
from training.kpi.scoring import (
    RawScores,
    Scored,
    baseline_scored,
    detect_all,
    fitted_raw_scores,
    outcomes,
    per_point,
    raw_scores,
)
from training.kpi.windows import (
    SeriesData,
    WindowConfig,
    features,
    most_common_interval,
    prepare_all,
    prepare_series,
    training_windows,
)
from training.settings import BenchmarkSettings, KpiTrainSettings

LEARN_FRACTION = 0.15  # NAB's rule: a detector may learn from the first 15% of each series only

PARITY_WINDOWS = 2000
SCORE_FUNCTION = "last_point_squared_error"
BASELINES = ("zscore", "hampel")


@dataclass
class KpiEvaluation:
    """The detector and the classic ones on the same points: NAB and point-adjusted figures."""

    reports: list[DetectorReport]
    scored: dict[str, list[Scored]]
    what: str  # which part of which series was evaluated
    band: BandCoverage | None = None  # the detector's normal band on the same points

    @property
    def detector(self) -> Detection:
        return self.reports[0].default

    def table(self) -> str:
        return format_comparison(self.reports, self.what)

    def verdict(self) -> str:
        band = [self.band.line()] if self.band is not None and self.band.normal_points else []
        return "\n".join([self._comparison(), *band])

    def _comparison(self) -> str:
        ours, others = self.reports[0], [r for r in self.reports[1:] if r.name in BASELINES]
        if nothing_to_compare(self.reports):  # the table's test, so the two lines agree
            return (f"no labelled anomalies in {self.what}: nothing to compare the detectors on (a "
                    "label column with 1 for anomalous points gives NAB scores and F1; the alerts "
                    "above are what the worker would raise)")  # fmt: skip
        lines = []
        for o in others:
            nab, f1 = ours.nab["standard"], ours.best_f1
            lines.append(
                f"{ours.name} vs {o.name}: NAB standard {nab:.1f} vs {o.nab['standard']:.1f}, "
                f"best PA-F1 {f1:.3f} vs {o.best_f1:.3f}"
            )
        return "\n".join(lines)

    def metrics(self) -> dict[str, float]:
        """Flat figures for the manifest, per detector: NAB per profile, best and default PA-F1."""
        out: dict[str, float] = {}
        for r in self.reports:
            out.update({f"{r.name}_nab_{p}": v for p, v in r.nab.items() if np.isfinite(v)})
            out[f"{r.name}_best_f1"] = r.best_f1
            d = r.default
            out.update(
                {
                    f"{r.name}_precision": d.precision,
                    f"{r.name}_recall": d.recall,
                    f"{r.name}_f1": d.f1,
                    f"{r.name}_false_alarms_per_day": d.false_alarms_per_day,
                }
            )
            for kind, k in d.per_kind.items():
                out[f"{r.name}_recall_{kind}"] = k.recall
        return out

    def as_json(self) -> dict[str, object]:
        return {"evaluated": self.what, "detectors": [r.as_dict() for r in self.reports],
                "verdict": self.verdict(), "band": self.band.as_dict() if self.band else None}  # fmt: skip


@dataclass
class KpiBundle:
    folder: Path
    manifest: ModelManifest
    evaluation: KpiEvaluation
    model: object  # the torch WindowVAE the graph was exported from, on the CPU
    series: list[SeriesData]


def window_config(s: KpiTrainSettings) -> WindowConfig:
    train, val = s.split_fractions()
    return WindowConfig(
        window=s.window,
        reset_gap=s.reset_gap or s.window,
        clip=s.clip,
        train_fraction=train,
        val_fraction=val,
    )


def detector_params(s: KpiTrainSettings) -> DetectorParams:
    return DetectorParams(threshold=s.alert_threshold, adapt_halflife=s.adapt_halflife, warmup=s.warmup)


def evaluate_series(
    series: list[SeriesData],
    raws: list[RawScores],
    params: DetectorParams,
    cfg: WindowConfig,
    delay: int | None,
    test_only: bool = True,
    primed: StateFile | None = None,
) -> KpiEvaluation:
    """The detector (the worker's), its VAE part alone (same adaptive thresholds) and the classic
    detectors, compared on the test parts (or, with test_only False, on every point after NAB's
    probationary first 15% of each series). Series in `primed` start from their primed state, as the
    worker starts them; the others (and every series of a test-part evaluation, which runs from
    each series' first point) from the priors."""
    vae_only = params.model_copy(update={"parts": ("vae",)})
    scored = {
        "detector": detect_all(series, raws, params, primed),
        "vae": detect_all(series, raws, vae_only, primed),
        **{name: baseline_scored(series, cfg, name) for name in BASELINES},
    }
    reports = []
    for name, sc in scored.items():
        if test_only:
            ratios = [per_point(s, x)[s.val_end :] for s, x in zip(series, sc, strict=True)]
            labels = [s.labels[s.val_end :] for s in series]
            default = evaluate(outcomes(series, sc), delay)
        else:
            ratios = [per_point(s, x) for s, x in zip(series, sc, strict=True)]
            labels = [s.labels for s in series]
            default = evaluate(outcomes(series, sc, part=0), delay)
        reports.append(report(name, ratios, labels, default, 0.0 if test_only else 0.15))
    what = (
        f"test parts of {len(series)} series" if test_only
        else f"every point of {len(series)} series after NAB's probationary 15%"
    )  # fmt: skip
    ours = scored["detector"]
    starts = [s.val_end if test_only else int(LEARN_FRACTION * len(s.grid)) for s in series]
    band = band_coverage(series, [x.ends for x in ours], [x.lower for x in ours], [x.upper for x in ours],
                         starts)  # fmt: skip
    return KpiEvaluation(reports, scored, what, band)


def calibration_of(series: list[SeriesData], ours: list[Scored], params: DetectorParams) -> Calibration:
    """The manifest's record of the detector's scores on the validation parts (its threshold is fixed
    in standard deviations; the thresholds per series adapt as they run)."""
    val = np.concatenate([sc.scores[s.part_of(sc.ends) == 1] for s, sc in zip(series, ours, strict=True)])
    return Calibration(
        method="adaptive",
        threshold=params.threshold,
        data=f"detector scores of the validation part of {len(series)} series (labels unused)",
        **score_summary(val if val.size else np.zeros(1)),
    )


def train_kpi_bundle(s: KpiTrainSettings) -> KpiBundle:
    """The whole KPI training run; the bundle appears at `s.out_dir()` only if every step succeeded."""
    import torch

    from training.kpi.fit import KpiFitConfig, fit_windows
    from training.kpi.model import WindowVAE

    if s.data is None:
        raise ValueError("--dataset csv needs --data PATH: a long CSV file or a folder of per-series CSVs")
    cfg = window_config(s)
    hidden = s.hidden_sizes()
    out = s.out_dir()
    refuse_existing(out)  # before training, not after
    t0 = time.monotonic()
    data = load_csv(s.data, s.labels)
    series = prepare_all(data, cfg, max_duplicates=s.max_duplicate_percent / 100)
    train = training_windows(series, cfg, "train")
    val = training_windows(series, cfg, "val")
    fit_cfg = KpiFitConfig.from_settings(s)
    print(
        f"training a dense window VAE (W {cfg.window}, hidden {list(hidden)}, latent {s.latent_dim}, "
        f"beta {s.beta}) on {len(train[0])} windows of {len(series)} series, validating on {len(val[0])}, "
        f"device {fit_cfg.device}"
    )
    torch.manual_seed(s.seed)
    model = WindowVAE(cfg.window, s.latent_dim, hidden, s.score_points)
    fitted = fit_windows(model, train, val, fit_cfg, progress=s.progress)
    summary = {
        "fit_seconds": round(fitted.seconds, 1),
        "best_epoch": fitted.best_epoch,
        "stopped_early": fitted.stopped_early,
        "train_windows": len(train[0]),
        "val_windows": len(val[0]),
    }
    steps = KpiSteps(s, out, cfg, model, data, series, summary, t0)
    manifest = write_bundle(out, steps, fitted, s.report)
    return KpiBundle(out, manifest, steps.evaluation, model, series)


@dataclass
class KpiSteps:
    """The core's steps (training.core.steps) for the window VAE, in the order write_bundle calls them."""

    s: KpiTrainSettings
    out: Path
    cfg: WindowConfig
    model: object  # the torch WindowVAE, on the CPU
    data: LoadedData
    series: list[SeriesData]
    summary: dict[str, object]  # of the fit, for the manifest
    started: float  # time.monotonic() when the run began
    raws: list[RawScores] = field(default_factory=list)  # set by calibrate
    params: DetectorParams | None = None  # set by calibrate: with priors
    primed: StateFile | None = None  # set by calibrate: each series' state after its learning part
    evaluation: KpiEvaluation | None = None  # set by evaluate

    def export(self, folder: Path) -> None:
        from training.kpi.export import check_window_parity, export_window_graph

        export_window_graph(self.model, folder / MODEL_FILE)
        windows = parity_windows(self.series, self.cfg, self.s.seed)
        check_window_parity(self.model, folder / MODEL_FILE, windows)

    def calibrate(self, model_path: Path) -> None:
        # The detector's priors and each series' primed state, from the graph's scores of the learning
        # parts; the states go into the bundle, so the worker starts these series warm.
        self.raws, self.params, self.primed = fitted_raw_scores(
            model_path, self.series, self.cfg, detector_params(self.s)
        )
        self.primed.write(model_path.parent / StateFile.NAME)

    def evaluate(self, model_path: Path) -> dict[str, object]:
        self.evaluation = evaluate_series(self.series, self.raws, self.params, self.cfg, self.s.delay)
        return self.evaluation.as_json()

    def report(self, folder: Path) -> None:
        from training.kpi import report

        report.series_scores(self.series, self.evaluation.scored, folder / "series_scores.png")
        report.recall_per_kind(self.evaluation.reports, folder / "recall_per_kind.png")

    def manifest(self, files: dict[str, str]) -> ModelManifest:
        ev = self.evaluation
        cal = calibration_of(self.series, ev.scored["detector"], self.params)
        summary = {"seconds": round(time.monotonic() - self.started, 1), **self.summary}
        s, out, cfg, model, data, series = self.s, self.out, self.cfg, self.model, self.data, self.series
        return build_manifest(s, out, cfg, model, data, series, cal, self.params, ev, summary, files)


def parity_windows(series: list[SeriesData], cfg: WindowConfig, seed: int) -> np.ndarray:
    """Real scaled windows from the test parts (the validation parts where a test part is too short),
    spread over every series."""
    from schemas.timeseries import scoreable

    per = max(1, PARITY_WINDOWS // len(series))
    rng = np.random.default_rng(seed)
    rows = []
    for s in series:
        ends = scoreable(s.grid, cfg.window)
        test = ends[s.part_of(ends) == 2]
        if test.size == 0:
            test = ends[s.part_of(ends) == 1]
        pick = rng.choice(test, size=min(per, test.size), replace=False)
        rows.append(features(s, np.sort(pick), cfg).z)
    return np.concatenate(rows)


def build_manifest(
    s: KpiTrainSettings,
    out: Path,
    cfg: WindowConfig,
    model,
    data: LoadedData,
    series: list[SeriesData],
    cal: Calibration,
    params: DetectorParams,
    ev: KpiEvaluation,
    summary: dict[str, object],
    files: dict[str, str],
) -> ModelManifest:
    from training.kpi.export import INPUT, OUTPUT, RECONSTRUCTION

    stats = {x.key: SeriesStats(interval_s=x.interval_s) for x in series}
    return new_manifest(
        s.model_name(),
        out,
        files,
        kind="metric",
        input=TensorSpec(name=INPUT, shape=[cfg.window]),
        outputs={
            "score": TensorSpec(name=OUTPUT, shape=[]),
            "reconstruction": TensorSpec(name=RECONSTRUCTION, shape=[]),
        },
        preprocessing=MetricPreprocessing(
            window=cfg.window,
            interval_s=most_common_interval(series),
            reset_gap=cfg.reset_gap,
            clip=cfg.clip,
            series=stats,
            detector=params,
            state_file=StateFile.NAME,
        ),
        score=ScoreSpec(
            function=SCORE_FUNCTION,
            description=f"mean squared error of the window's last {model.score_points} scaled "
            "point(s), reconstructed from the latent mean: the detector's vae part (schemas/detect/)",
        ),
        threshold=cal.threshold,
        calibration=cal,
        severity="threshold-ratio",
        training={
            "dataset": "csv",
            "data": str(Path(s.data).resolve()),
            **({"labels": str(Path(s.labels).resolve())} if s.labels else {}),
            "files": len(data.files),
            "series": len(series),
            "series_skipped": len(data.series) - len(series),
            "points": int(sum(x.n_real for x in series)),
            "missing_values_skipped": data.missing_values,
            "has_labels": data.has_labels,
            "split": [
                cfg.train_fraction,
                cfg.val_fraction,
                round(1 - cfg.train_fraction - cfg.val_fraction, 6),
            ],
            **model.config(),
            "beta": s.beta,
            "missing_injection": s.missing_injection,
            "context_anomalies": s.context_anomalies,
            "delay": s.delay,
            "epochs": s.epochs,
            "batch_size": s.batch_size,
            "lr": s.lr,
            "weight_decay": s.weight_decay,
            "patience": s.patience,
            "seed": s.seed,
            "device": s.torch_device(),
            "baselines": "zscore: rolling z-score over the previous 1,000 points; hampel: median/MAD over "
            f"the previous {cfg.window - 1} points; each at the p99 of each series' validation part",
            **summary,
        },
        metrics=ev.metrics(),
    )




def evaluate_kpi_bundle(
    bundle: Path, data: Path | None = None, labels: Path | None = None
) -> tuple[ModelManifest, KpiEvaluation]:
    """Re-score a metric bundle with onnxruntime, through the worker's detector, beside the classic ones.

    Without `data`: the CSV the manifest names, on the test parts of the bundle's series (the
    training figures again). With `data`: every series of that CSV, known to the bundle or not,
    on every point after the first 15% (NAB's probationary period), as a stream would see them;
    the classic detectors calibrate on that first 15%.
    """
    manifest = read_manifest(bundle)
    pre = manifest.preprocessing
    if not isinstance(pre, MetricPreprocessing):
        raise ValueError(f"{bundle} is an {manifest.kind} bundle; evaluate --data needs a metric bundle")
    test_only = data is None
    if data is None and labels is None:  # the training data, labelled as it was
        labels = manifest.training.get("labels")
    loaded = load_csv(Path(data or str(manifest.training["data"])), Path(labels) if labels else None)
    if test_only:
        train, val, _ = manifest.training["split"]  # type: ignore[misc]
        fractions = float(train), float(val)  # type: ignore[arg-type]
    else:
        fractions = LEARN_FRACTION * 2 / 3, LEARN_FRACTION / 3
    cfg = WindowConfig(pre.window, pre.reset_gap, pre.clip, *fractions)
    series = []
    for key, raw in loaded.series.items():
        known = pre.series.get(key)
        if test_only and known is None:
            continue
        if (warning := interval_warning(raw, pre)) is not None:
            print(warning)
        try:
            series.append(prepare_series(raw, cfg, known.interval_s if known else None))
        except ValueError as exc:  # one timestamp, or one far off: skip, say why
            print(f"warning: series {key} skipped: {exc}")
    if not series:
        raise ValueError("no series of the data can be scored by this bundle")
    session = cpu_session(bundle / manifest.model_file)
    raws = [raw_scores(session, s, cfg) for s in series]
    delay = manifest.training.get("delay")
    delay = int(delay) if delay is not None else None  # type: ignore[arg-type]
    primed = None if test_only else primed_states(bundle, pre)
    ev = evaluate_series(series, raws, pre.detector, cfg, delay, test_only, primed)
    store_reevaluation(bundle, ev.as_json())
    return manifest, ev


def interval_warning(raw: RawSeries, pre: MetricPreprocessing) -> str | None:
    """A warning when the series' points come at an interval clearly other than the model's grid
    interval for it (the bundle's for a series it knows, else the bundle's grid's); else None."""
    known = pre.series.get(raw.key)
    model_s = known.interval_s if known else pre.interval_s
    try:
        observed = detect_interval(raw.timestamps)
    except ValueError:  # one timestamp: prepare_series says why it is skipped
        return None
    if not off_grid(observed, model_s):  # the worker's rule too (worker/windows.py)
        return None
    if known is not None:
        how = f"the bundle knows it at {model_s:g} s, so here, as in the worker, it is put on that grid"
    else:
        span = f"each window spanning {observed / model_s:.2g}x the time the model learnt"
        how = f"here it is scored on its own grid, {span}; the worker puts it on the {model_s:g} s grid"
    effect = regrid_effect(observed, model_s, pre.reset_gap)
    return (f"warning: series {raw.key!r}: points every {observed:g} s (median gap), but the model learnt "
            f"windows of {model_s:g} s points; {how} ({effect}), so expect false "
            f"or missed alerts. Train a model on data at {observed:g} s (python -m training train "
            "--dataset csv --data CSV-of-these-series) and serve that one for these series")  # fmt: skip


def regrid_effect(observed_s: float, grid_s: float, reset_gap: int) -> str:
    """What putting points of one interval on a grid of another does, in words."""
    ratio = observed_s / grid_s
    if ratio - 1 >= reset_gap:  # every gap restarts the window (schemas/timeseries.py)
        return (f"gaps of {ratio - 1:.2g} slots (reset_gap {reset_gap} or more) restart the window at every "
                "point, so none is scored")  # fmt: skip
    if ratio > 1:
        return f"about {ratio - 1:.2g} of every {ratio:.2g} slots filled by interpolation"
    return f"about {1 / ratio - 1:.2g} of every {1 / ratio:.2g} points dropped as a second point in a slot"


def primed_states(bundle: Path, pre: MetricPreprocessing) -> StateFile | None:
    """The bundle's primed series states, if it has them."""
    return StateFile.read(bundle / pre.state_file) if pre.state_file else None


def learning_part(data: LoadedData, percent: float, path: Path) -> Path:
    """Write the first `percent` of each series' points (in time order) as a long CSV at `path`."""
    import csv

    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["series", "timestamp", "value"])
        for key, raw in data.series.items():
            order = np.argsort(raw.timestamps, kind="stable")
            keep = order[: int(np.ceil(len(order) * percent / 100.0))]
            for i in keep:
                out.writerow([key, repr(float(raw.timestamps[i])), repr(float(raw.values[i]))])
    return path


def benchmark_kpi(s: BenchmarkSettings) -> tuple[KpiBundle, KpiEvaluation]:
    """Train on the first `s.learn_percent` of each series of `s.data`, then evaluate on every point."""
    if s.data is None:
        raise ValueError("benchmark needs --data PATH: a long CSV file or a folder of per-series CSVs")
    out = s.out_dir()
    refuse_existing(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    learn = learning_part(load_csv(s.data), s.learn_percent, out.parent / f".{out.name}-learn.csv")
    try:
        trained = train_kpi_bundle(s.model_copy(update={"data": learn, "out": out}))
    finally:
        learn.unlink(missing_ok=True)
    _, ev = evaluate_kpi_bundle(out, s.data, s.labels)
    return trained, ev
