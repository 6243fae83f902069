"""The training loop: ELBO with a one-cycle schedule, early stopping on validation loss."""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from training.loss import anomaly_score, bce_with_logits_sum, elbo_loss, kl_divergence
from training.models import VAE


@dataclass(frozen=True)
class FitConfig:
    epochs: int = 20
    batch_size: int = 128
    lr: float = 2e-3
    beta: float = 1.0
    weight_decay: float = 0.05  # AdamW; narrows the gap between training and test writers
    seed: int = 0
    patience: int = 5  # epochs without a better validation loss before stopping
    device: str = "cpu"


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_tensor(images: np.ndarray, device: str) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1], the worker's pre-processing."""
    return torch.from_numpy(images.astype(np.float32) * np.float32(1.0 / 255.0)).to(device)


@torch.no_grad()
def evaluate_loss(model: VAE, images: torch.Tensor, beta: float, batch: int = 1024) -> dict[str, float]:
    """Validation ELBO from the latent mean: deterministic, so early stopping is not noise-driven."""
    model.eval()
    recon = kl = 0.0
    for i in range(0, len(images), batch):
        x = images[i : i + batch]
        logits, mu, logvar = model(x)
        recon += float(bce_with_logits_sum(logits, x).sum())
        kl += float(kl_divergence(mu, logvar).sum())
    n = len(images)
    return {"loss": (recon + beta * kl) / n, "recon": recon / n, "kl": kl / n}


BatchLosses = Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]]


def run_epochs(
    model: torch.nn.Module,
    cfg: FitConfig,
    steps_per_epoch: int,
    batches: Callable[[torch.Generator], BatchLosses],
    validate: Callable[[], dict[str, float] | None],
    progress: bool = True,
    extra: Callable[[], dict[str, float]] | None = None,
) -> FitResult:
    """The loop both VAEs share: AdamW with a one-cycle schedule, a progress bar, the history,
    early stopping on the validation loss, and the best epoch's weights restored at the end.

    `batches(generator)` yields (loss, reconstruction, KL, batch size) for each batch of an epoch;
    `validate()` gives the validation {"loss", "recon", "kl"} (None: the training figures stand in).
    """
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(cfg.seed)
    result = FitResult()
    best_loss, best_state, since_best = float("inf"), None, 0
    t0 = time.monotonic()
    bar = tqdm(range(1, cfg.epochs + 1), desc="training", unit="epoch", disable=not progress)
    for epoch in bar:
        model.train()
        totals, seen = np.zeros(3), 0
        for loss, recon, kl, size in batches(gen):
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            totals += np.array([loss.item(), recon.item(), kl.item()]) * size
            seen += size
        train = totals / max(seen, 1)
        val = validate() or {"loss": train[0], "recon": train[1], "kl": train[2]}
        result.history.append(
            {
                "epoch": epoch,
                "train_loss": train[0],
                "train_recon": train[1],
                "train_kl": train[2],
                "val_loss": val["loss"],
                "val_recon": val["recon"],
                "val_kl": val["kl"],
                **(extra() if extra else {}),
            }
        )
        bar.set_postfix(train=f"{train[0]:.1f}", val=f"{val['loss']:.1f}", recon=f"{val['recon']:.1f}")
        if val["loss"] < best_loss:
            best_loss, best_state, since_best = val["loss"], copy.deepcopy(model.state_dict()), 0
            result.best_epoch = epoch
        else:
            since_best += 1
            if since_best >= cfg.patience:
                result.stopped_early = True
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.monotonic() - t0
    return result


def fit(
    model: VAE, train_images: np.ndarray, val_images: np.ndarray, cfg: FitConfig, progress: bool = True
) -> FitResult:
    """Train in place; on return the model holds the weights of the best validation epoch."""
    seed_everything(cfg.seed)
    model.to(cfg.device)
    x_train = to_tensor(train_images, cfg.device)
    x_val = to_tensor(val_images, cfg.device)

    def batches(gen: torch.Generator) -> BatchLosses:
        for idx in torch.randperm(len(x_train), generator=gen).split(cfg.batch_size):
            x = x_train[idx.to(cfg.device)]
            logits, mu, logvar = model(x)
            yield (*elbo_loss(logits, x, mu, logvar, cfg.beta), len(x))

    steps = (len(x_train) + cfg.batch_size - 1) // cfg.batch_size
    return run_epochs(model, cfg, steps, batches, lambda: evaluate_loss(model, x_val, cfg.beta), progress)


@torch.no_grad()
def score_images(
    model: VAE, images: np.ndarray, function: str, device: str = "cpu", batch: int = 1024
) -> np.ndarray:
    """Anomaly scores from the latent mean, computed as the ONNX graph does."""
    model.eval()
    x_all = to_tensor(images, device)
    out = []
    for i in range(0, len(x_all), batch):
        x = x_all[i : i + batch]
        mu, _ = model.encode(x)
        out.append(anomaly_score(model.decode(mu), x, function).cpu())
    return torch.cat(out).numpy().astype(np.float64)
