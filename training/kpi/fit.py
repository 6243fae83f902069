"""Training loop of the window VAE: M-ELBO, missing-point injection, one-cycle AdamW, early stopping."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from training.core.fit import BatchLosses, FitConfig, FitResult, run_epochs, seed_everything
from training.kpi.model import WindowVAE, m_elbo


@dataclass(frozen=True)
class KpiFitConfig(FitConfig):
    batch_size: int = 256
    missing_injection: float = 0.01  # share of observed training points hidden per batch (Donut)
    context_anomalies: float = 0.3  # share of training windows given an anomaly before the scored point
    # Large data sets (months of minute data, many series): each epoch trains on a fresh random
    # sample of at most this many windows, and early stopping watches a fixed sample of the
    # validation windows, so an epoch costs the same whatever the data size.
    epoch_windows: int = 200_000
    val_windows: int = 50_000


def inject_missing(
    x: torch.Tensor, observed: torch.Tensor, ratio: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide a random `ratio` of points: set to 0 (the series' median) in the input and masked out of the loss.

    Donut's missing-data injection: the model learns to reconstruct a window whose input
    has a few wrong points, which is what an anomalous window looks like to it.
    """
    if ratio <= 0:
        return x, observed
    hide = torch.rand(x.shape, generator=gen, device="cpu").to(x.device) < ratio
    return x.masked_fill(hide, 0.0), observed & ~hide


def inject_context_anomalies(
    x: torch.Tensor, share: float, score_points: int, gen: torch.Generator
) -> torch.Tensor:
    """Add a random bump (1 to W/4 points, +-2..8 scale units) to a `share` of the windows, never on
    the scored last point(s). The loss still compares with the clean window, so the model learns
    to reconstruct the last point from a context that holds an anomaly: without it, an anomaly
    keeps raising the scores of the W points after it ("echo" false alarms)."""
    if share <= 0:
        return x
    n, w = x.shape
    span = w - score_points
    pick = torch.rand(n, generator=gen) < share
    if not pick.any():
        return x
    k = int(pick.sum())
    length = torch.randint(1, max(2, w // 4), (k,), generator=gen)
    start = (torch.rand(k, generator=gen) * (span - length).clamp(min=1)).long()
    amp = (torch.rand(k, generator=gen) * 6 + 2) * torch.where(torch.rand(k, generator=gen) < 0.5, -1.0, 1.0)
    pos = torch.arange(w)[None, :]
    bump = ((pos >= start[:, None]) & (pos < (start + length)[:, None]) & (pos < span)).float() * amp[:, None]
    out = x.clone()
    out[pick] = out[pick] + bump.to(x.device)
    return out


@torch.no_grad()
def evaluate_loss(
    model: WindowVAE, x: torch.Tensor, m: torch.Tensor, beta: float, batch: int = 4096
) -> dict[str, float]:
    """Validation M-ELBO from the latent mean: deterministic, so early stopping is not noise-driven."""
    model.eval()
    totals = np.zeros(3)
    for i in range(0, len(x), batch):
        xb, mb = x[i : i + batch], m[i : i + batch]
        recon, mu, logvar = model(xb)
        loss, nll, kl = m_elbo(model, recon, xb, mb, mu, logvar, beta)
        totals += np.array([loss.item(), nll.item(), kl.item()]) * len(xb)
    totals /= max(len(x), 1)
    return {"loss": totals[0], "recon": totals[1], "kl": totals[2]}


def fit_windows(
    model: WindowVAE,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    cfg: KpiFitConfig,
    progress: bool = True,
) -> FitResult:
    """Train in place on (windows, observed masks); on return the model holds its best validation epoch."""
    seed_everything(cfg.seed)
    model.to(cfg.device)
    x_train = torch.from_numpy(train[0]).to(cfg.device)
    m_train = torch.from_numpy(train[1]).to(cfg.device)
    pick = np.sort(np.random.default_rng(cfg.seed).permutation(len(val[0]))[: cfg.val_windows])
    x_val = torch.from_numpy(val[0][pick]).to(cfg.device)
    m_val = torch.from_numpy(val[1][pick]).to(cfg.device)
    per_epoch = min(len(x_train), cfg.epoch_windows)

    def batches(gen: torch.Generator) -> BatchLosses:
        for idx in torch.randperm(len(x_train), generator=gen)[:per_epoch].split(cfg.batch_size):
            idx = idx.to(cfg.device)
            x, m = inject_missing(x_train[idx], m_train[idx], cfg.missing_injection, gen)
            x = inject_context_anomalies(x, cfg.context_anomalies, model.score_points, gen)
            recon, mu, logvar = model(x)
            # The loss compares with the true values; hidden points are masked, so it never sees them.
            yield (*m_elbo(model, recon, x_train[idx], m, mu, logvar, cfg.beta), len(x))

    def validate() -> dict[str, float] | None:
        return evaluate_loss(model, x_val, m_val, cfg.beta) if len(x_val) else None

    steps = (per_epoch + cfg.batch_size - 1) // cfg.batch_size
    result = run_epochs(model, cfg, steps, batches, validate, progress,
                        extra=lambda: {"sigma": float(model.log_sigma.detach().exp())})  # fmt: skip
    model.cpu()
    return result


@torch.no_grad()
def torch_window_scores(model: WindowVAE, windows: np.ndarray, batch: int = 8192) -> np.ndarray:
    """The reference the ONNX graph must match: model.score in torch on the CPU."""
    model = model.cpu().eval()
    x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
    return torch.cat([model.score(x[i : i + batch]) for i in range(0, len(x), batch)]).numpy()
