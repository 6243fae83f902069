"""Training loop of the window VAE: M-ELBO, missing-point injection, one-cycle AdamW, early stopping."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from training.fit import FitResult, seed_everything
from training.kpi.model import WindowVAE, m_elbo


@dataclass(frozen=True)
class KpiFitConfig:
    epochs: int = 20
    batch_size: int = 256
    lr: float = 2e-3
    beta: float = 1.0
    weight_decay: float = 0.05
    missing_injection: float = 0.01  # share of observed training points hidden per batch (Donut)
    context_anomalies: float = 0.3  # share of training windows given an anomaly before the scored point
    # Large data sets (months of minute data, many series): each epoch trains on a fresh random
    # sample of at most this many windows, and early stopping watches a fixed sample of the
    # validation windows, so an epoch costs the same whatever the data size.
    epoch_windows: int = 200_000
    val_windows: int = 50_000
    patience: int = 5
    seed: int = 0
    device: str = "cpu"


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
    pick = np.random.default_rng(cfg.seed).permutation(len(val[0]))[: cfg.val_windows]
    x_val = torch.from_numpy(val[0][np.sort(pick)]).to(cfg.device)
    m_val = torch.from_numpy(val[1][np.sort(pick)]).to(cfg.device)
    per_epoch = min(len(x_train), cfg.epoch_windows)
    steps = (per_epoch + cfg.batch_size - 1) // cfg.batch_size
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps)
    gen = torch.Generator().manual_seed(cfg.seed)

    result = FitResult()
    best_loss, best_state, since_best = float("inf"), None, 0
    t0 = time.monotonic()
    bar = tqdm(range(1, cfg.epochs + 1), desc="training", unit="epoch", disable=not progress)
    for epoch in bar:
        model.train()
        totals = np.zeros(3)
        for idx in torch.randperm(len(x_train), generator=gen)[:per_epoch].split(cfg.batch_size):
            idx = idx.to(cfg.device)
            x, m = inject_missing(x_train[idx], m_train[idx], cfg.missing_injection, gen)
            x = inject_context_anomalies(x, cfg.context_anomalies, model.score_points, gen)
            recon, mu, logvar = model(x)
            # The loss compares with the true values; hidden points are masked, so it never sees them.
            loss, nll, kl = m_elbo(model, recon, x_train[idx], m, mu, logvar, cfg.beta)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            totals += np.array([loss.item(), nll.item(), kl.item()]) * len(x)
        train_avg = totals / per_epoch
        val_loss = evaluate_loss(model, x_val, m_val, cfg.beta) if len(x_val) else None
        result.history.append(
            {
                "epoch": epoch,
                "train_loss": train_avg[0],
                "train_recon": train_avg[1],
                "train_kl": train_avg[2],
                "val_loss": val_loss["loss"] if val_loss else train_avg[0],
                "val_recon": val_loss["recon"] if val_loss else train_avg[1],
                "val_kl": val_loss["kl"] if val_loss else train_avg[2],
                "sigma": float(model.log_sigma.detach().exp()),
            }
        )
        current = result.history[-1]["val_loss"]
        bar.set_postfix(train=f"{train_avg[0]:.1f}", val=f"{current:.1f}")
        if current < best_loss:
            best_loss, best_state, since_best = current, copy.deepcopy(model.state_dict()), 0
            result.best_epoch = epoch
        else:
            since_best += 1
            if since_best >= cfg.patience:
                result.stopped_early = True
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.cpu().eval()
    result.seconds = time.monotonic() - t0
    return result


@torch.no_grad()
def torch_window_scores(model: WindowVAE, windows: np.ndarray, batch: int = 8192) -> np.ndarray:
    """The reference the ONNX graph must match: model.score in torch on the CPU."""
    model = model.cpu().eval()
    x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
    return torch.cat([model.score(x[i : i + batch]) for i in range(0, len(x), batch)]).numpy()
