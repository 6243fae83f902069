"""KPI CSV -> windows -> fit -> export + parity -> calibrate (VAE and baseline alike) -> evaluate -> bundle.

Calibration and evaluation score the exported graph with plain onnxruntime, as the worker
will, so the figures in the manifest are the bundle's, not the torch model's.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from schemas import Calibration, MetricPreprocessing, ModelManifest, ScoreSpec, SeriesStats, TensorSpec
from schemas.timeseries import normalise
from training.bundle import BundleExistsError, package_versions, read_manifest, staging_folder, write_manifest
from training.kpi.evaluate import Detection, evaluate, format_table, verdict
from training.kpi.load import LoadedData, load_csv
from training.kpi.scoring import (
    Scored,
    baseline_scored,
    calibrate_series,
    outcomes,
    vae_scored,
)
from training.kpi.windows import (
    SeriesData,
    WindowConfig,
    most_common_interval,
    prepare_all,
    prepare_series,
    score_windows,
    training_windows,
)
from training.settings import TrainSettings

PARITY_WINDOWS = 2000
SCORE_FUNCTION = "last_point_squared_error"


@dataclass
class KpiEvaluation:
    vae: Detection
    baseline: Detection
    delay: int | None
    window: int
    vae_scored: list[Scored]
    base_scored: list[Scored]
    vae_thresholds: dict[str, float]
    base_thresholds: dict[str, float]

    def table(self) -> str:
        return format_table(self.vae, self.baseline, self.delay, self.window)

    def verdict(self) -> str:
        return verdict(self.vae, self.baseline)

    def metrics(self) -> dict[str, float]:
        """Flat figures for the manifest: overall, then recall and F1 per kind, VAE and baseline."""
        out: dict[str, float] = {}
        for who, d in (("vae", self.vae), ("baseline", self.baseline)):
            out.update(
                {
                    f"{who}_precision": d.precision,
                    f"{who}_recall": d.recall,
                    f"{who}_f1": d.f1,
                    f"{who}_false_alarms_per_day": d.false_alarms_per_day,
                }
            )
            for kind, k in d.per_kind.items():
                out[f"{who}_recall_{kind}"] = k.recall
                out[f"{who}_f1_{kind}"] = k.f1
        return out

    def as_json(self) -> dict[str, object]:
        return {
            "protocol": "point-adjusted, test part of each series, pooled; "
            + ("no delay limit" if self.delay is None else f"delay {self.delay}"),
            "vae": self.vae.as_dict(),
            "baseline": self.baseline.as_dict(),
            "verdict": self.verdict(),
        }


@dataclass
class KpiBundle:
    folder: Path
    manifest: ModelManifest
    evaluation: KpiEvaluation
    model: object  # the torch WindowVAE the graph was exported from, on the CPU
    series: list[SeriesData]


def window_config(s: TrainSettings) -> WindowConfig:
    train, val = s.split_fractions()
    return WindowConfig(
        window=s.window,
        reset_gap=s.reset_gap or s.window,
        clip=s.clip,
        train_fraction=train,
        val_fraction=val,
    )


def evaluate_series(
    vae: list[Scored],
    series: list[SeriesData],
    window: int,
    vae_thresholds: dict[str, float],
    cal: Calibration,
    per_series: bool,
    delay: int | None,
) -> KpiEvaluation:
    """Calibrate the baseline as the VAE was, and compare the two on the test parts."""
    base = baseline_scored(series, window)
    _, base_thr = calibrate_series(
        series, base, cal.method, cal.percentile or 99.0, cal.k or 3.0, per_series, "z-scores"
    )
    return KpiEvaluation(
        vae=evaluate(outcomes(series, vae, vae_thresholds), delay),
        baseline=evaluate(outcomes(series, base, base_thr), delay),
        delay=delay,
        window=window,
        vae_scored=vae,
        base_scored=base,
        vae_thresholds=vae_thresholds,
        base_thresholds=base_thr,
    )


def train_kpi_bundle(s: TrainSettings) -> KpiBundle:
    """The whole KPI training run; the bundle appears at `s.out_dir()` only if every step succeeded."""
    import torch

    from training.kpi import report
    from training.kpi.export import check_parity, export_window_graph
    from training.kpi.fit import KpiFitConfig, fit_windows
    from training.kpi.model import WindowVAE

    if s.data is None:
        raise ValueError("--dataset csv needs --data PATH: a long CSV file or a folder of per-series CSVs")
    cfg = window_config(s)
    hidden = s.hidden_sizes()
    out = s.out_dir()
    if out.exists():  # fail before training, not after
        raise BundleExistsError(f"{out} already exists; pick a new version folder or delete it first")
    t0 = time.monotonic()
    data = load_csv(s.data)
    series = prepare_all(data, cfg)
    train = training_windows(series, cfg.window, "train")
    val = training_windows(series, cfg.window, "val")
    device = s.torch_device()
    print(
        f"training a dense window VAE (W {cfg.window}, hidden {list(hidden)}, latent {s.latent_dim}, "
        f"beta {s.beta}) on {len(train[0])} windows of {len(series)} series, validating on {len(val[0])}, "
        f"device {device}"
    )
    torch.manual_seed(s.seed)
    model = WindowVAE(cfg.window, s.latent_dim, hidden, s.score_points)
    fit_cfg = KpiFitConfig(
        epochs=s.epochs,
        batch_size=s.batch_size,
        lr=s.lr,
        beta=s.beta,
        weight_decay=s.weight_decay,
        missing_injection=s.missing_injection,
        context_anomalies=s.context_anomalies,
        patience=s.patience,
        seed=s.seed,
        device=device,
    )
    fitted = fit_windows(model, train, val, fit_cfg, progress=s.progress)

    with staging_folder(out) as folder:
        print("exporting the ONNX graph and checking torch/onnxruntime parity on real windows")
        export_window_graph(model, folder / "model.onnx")
        check_parity(model, folder / "model.onnx", parity_windows(series, cfg.window, s.seed))
        # The bundle's own (onnxruntime) scores decide the thresholds the worker will use.
        vae = vae_scored(folder / "model.onnx", series, cfg.window)
        cal, thresholds = calibrate_series(
            series, vae, s.calibration, s.percentile, s.k, s.per_series_threshold, "VAE scores"
        )
        ev = evaluate_series(vae, series, cfg.window, thresholds, cal, s.per_series_threshold, s.delay)
        (folder / "evaluation.json").write_text(json.dumps(ev.as_json(), indent=2) + "\n")
        (folder / "history.json").write_text(json.dumps(fitted.as_dict(), indent=2, default=float) + "\n")
        if s.report:
            print("drawing the report figures")
            from training.report import loss_curves

            loss_curves(fitted.history, fitted.best_epoch, folder / "loss_curves.png")
            report.series_scores(
                series, ev.vae_scored, ev.base_scored, ev.vae_thresholds, ev.base_thresholds,
                folder / "series_scores.png",
            )  # fmt: skip
            report.recall_per_kind(ev.vae, ev.baseline, folder / "recall_per_kind.png")
        summary = {
            "seconds": round(time.monotonic() - t0, 1),
            "fit_seconds": round(fitted.seconds, 1),
            "best_epoch": fitted.best_epoch,
            "stopped_early": fitted.stopped_early,
            "train_windows": len(train[0]),
            "val_windows": len(val[0]),
        }
        manifest = write_manifest(
            folder,
            lambda files: build_manifest(
                s, out, cfg, model, data, series, cal, thresholds, ev, summary, files
            ),
        )
    return KpiBundle(out, manifest, ev, model, series)


def parity_windows(series: list[SeriesData], window: int, seed: int) -> np.ndarray:
    """Real windows from the test parts, spread over every series."""
    per = max(1, PARITY_WINDOWS // len(series))
    rng = np.random.default_rng(seed)
    rows = []
    for s in series:
        ends, windows = score_windows(s, window)
        test = np.flatnonzero(s.part_of(ends) == 2)
        rows.append(windows[rng.choice(test, size=min(per, test.size), replace=False)])
    return np.concatenate(rows)


def build_manifest(
    s: TrainSettings,
    out: Path,
    cfg: WindowConfig,
    model,
    data: LoadedData,
    series: list[SeriesData],
    cal: Calibration,
    thresholds: dict[str, float],
    ev: KpiEvaluation,
    summary: dict[str, object],
    files: dict[str, str],
) -> ModelManifest:
    from training.export import OPSET
    from training.kpi.export import INPUT, OUTPUT

    stats = {
        x.key: SeriesStats(
            center=x.center,
            scale=x.scale,
            interval_s=x.interval_s,
            threshold=thresholds[x.key] if s.per_series_threshold else None,
        )
        for x in series
    }
    return ModelManifest(
        name=s.model_name(),
        version=out.name,
        kind="metric",
        created_at=datetime.now(UTC),
        input=TensorSpec(name=INPUT, shape=[cfg.window]),
        outputs={"score": TensorSpec(name=OUTPUT, shape=[])},
        opset=OPSET,
        preprocessing=MetricPreprocessing(
            window=cfg.window,
            interval_s=most_common_interval(series),
            reset_gap=cfg.reset_gap,
            clip=cfg.clip,
            series=stats,
        ),
        score=ScoreSpec(
            function=SCORE_FUNCTION,
            description=f"mean squared error of the window's last {model.score_points} normalised "
            "point(s), reconstructed from the latent mean",
        ),
        threshold=cal.threshold,
        calibration=cal,
        training={
            "dataset": "csv",
            "data": str(Path(s.data).resolve()),
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
            "per_series_threshold": s.per_series_threshold,
            "delay": s.delay,
            "epochs": s.epochs,
            "batch_size": s.batch_size,
            "lr": s.lr,
            "weight_decay": s.weight_decay,
            "patience": s.patience,
            "seed": s.seed,
            "device": s.torch_device(),
            "baseline": f"rolling z-score over the previous {cfg.window} points, calibrated the same way",
            **summary,
        },
        metrics=ev.metrics(),
        files=files,
        package_versions=package_versions(),
    )


def series_from_manifest(manifest: ModelManifest, data: LoadedData) -> list[SeriesData]:
    """The bundle's series, gridded and scaled exactly as the manifest says (for re-evaluation)."""
    pre = manifest.preprocessing
    assert isinstance(pre, MetricPreprocessing)
    train, val, _ = manifest.training["split"]  # type: ignore[misc]
    cfg = WindowConfig(pre.window, pre.reset_gap, pre.clip, float(train), float(val))
    out = []
    for key, st in pre.series.items():
        if key not in data.series:
            raise ValueError(f"series {key!r} of the bundle is not in the data any more")
        x = prepare_series(data.series[key], cfg, st.interval_s)
        out.append(
            dataclasses.replace(
                x, center=st.center, scale=st.scale, z=normalise(x.grid.values, st.center, st.scale, pre.clip)
            )
        )
    return out


def evaluate_kpi_bundle(bundle: Path, data: Path | None = None) -> tuple[ModelManifest, KpiEvaluation]:
    """Re-score a metric bundle with onnxruntime on the CSV its manifest names (or `data`)."""
    manifest = read_manifest(bundle)
    path = Path(data or str(manifest.training["data"]))
    series = series_from_manifest(manifest, load_csv(path))
    pre = manifest.preprocessing
    assert isinstance(pre, MetricPreprocessing)
    thresholds = {
        k: st.threshold if st.threshold is not None else manifest.threshold for k, st in pre.series.items()
    }
    per_series = bool(manifest.training.get("per_series_threshold", True))
    delay = manifest.training.get("delay")
    vae = vae_scored(bundle / manifest.model_file, series, pre.window)
    ev = evaluate_series(
        vae, series, pre.window, thresholds, manifest.calibration, per_series,
        int(delay) if delay is not None else None,  # type: ignore[arg-type]
    )  # fmt: skip
    text = json.dumps(ev.as_json(), indent=2) + "\n"
    stored = bundle / "evaluation.json"
    if not stored.exists() or stored.read_text() != text:  # hashed in the manifest: never overwritten
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        (bundle / f"evaluation-{stamp}.json").write_text(text)
    return manifest, ev
