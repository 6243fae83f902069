"""A tiny metric (KPI) bundle, trained for real in seconds, for session fixtures."""

from __future__ import annotations

from pathlib import Path

TINY_SEED = 5  # the synthetic data of the tiny bundle; the quality test uses another seed


def tiny_kpi_csv(folder: Path, series: int = 3, days: int = 4, seed: int = TINY_SEED) -> Path:
    """A labelled long CSV (series,timestamp,value,label,kind) at 5-minute steps."""
    from training.kpi.synth import synthesize

    return synthesize(Path(folder), series, days, seed)


def train_tiny_kpi_bundle(out: Path, csv: Path, window: int = 32, epochs: int = 3, **overrides):
    """A real metric bundle at `out` (<repository>/<name>/<version>, must not exist): a few seconds.

    Returns training.kpi.pipeline.KpiBundle (.folder, .manifest, .evaluation, .model, .series).
    """
    from training.kpi.pipeline import train_kpi_bundle
    from training.settings import KpiTrainSettings

    settings = dict(data=csv, out=out, window=window, epochs=epochs, progress=False)
    return train_kpi_bundle(KpiTrainSettings(**{"report": False, **settings, **overrides}))
