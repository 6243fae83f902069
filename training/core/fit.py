"""The epoch loop every VAE here shares: AdamW, a one-cycle schedule, early stopping, the best weights."""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

if TYPE_CHECKING:
    from training.settings import TrainSettings


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

    @classmethod
    def from_settings(cls, s: TrainSettings, **overrides: object) -> FitConfig:
        """The config of a training run: each field from the option of the same name where the settings
        have one (the device resolved: auto -> cuda or cpu), else its default."""
        values = {f.name: getattr(s, f.name) for f in fields(cls) if f.name in type(s).model_fields}
        return cls(**{**values, "device": s.torch_device(), **overrides})


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
