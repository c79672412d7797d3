"""The one minibatch trainer behind every network the project trains: the (C)VAE, the evaluator / judge /
classifier networks and the discriminator.

Adam (or any optimizer) over seeded shuffles of the training indices, an optional per-step schedule,
a NaN check that names the fix, an optional held-out value with early stopping (the best epoch's
weights are restored) or early stopping on the training loss itself (the authors' rule), and a progress
bar. The caller's ``loss_fn(idx)`` computes the mean loss of a minibatch (with its own autocast), so the
trainer never sees the model's inputs.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .errors import RunError


def adam(params, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam with the fused kernel where torch has one for ``device`` (CPU, CUDA): one pass over the
    parameters per step instead of several element-wise ones (about 10% of a CVAE step on 2 CPU cores)."""
    return torch.optim.Adam(params, lr=lr, fused=device.type in ("cpu", "cuda") or None)


@dataclass
class Trained:
    """What a training run reports: the last epoch's mean loss, the best held-out value, epochs run."""

    train_loss: float
    best_val: float
    epochs: int


def train_minibatch(module: nn.Module, loss_fn: Callable[[Tensor], Tensor], train_idx: Tensor, *,
                    optimizer: torch.optim.Optimizer, epochs: int, batch_size: int, rng: torch.Generator,
                    scheduler=None, val_fn: Callable[[], float] | None = None, patience: int | None = None,
                    stop_on: str = "val", nan_hint: str = "", desc: str = "train", progress: bool = True) -> Trained:
    """Train ``module`` for up to ``epochs`` passes over ``train_idx`` [N] in shuffled minibatches.

    Each epoch draws its order from ``rng`` (so a seed fixes every minibatch). With ``val_fn``, the
    held-out value is read after every epoch; the best epoch's weights are kept, and training stops
    after ``patience`` epochs without an improvement of 1e-3. With ``stop_on="train"`` (no ``val_fn``) the
    epoch's mean training loss is watched instead: training stops after ``patience`` epochs in which it did not
    fall below its lowest value (no minimum improvement), and the last epoch's weights are kept.
    """
    if stop_on not in ("val", "train") or (stop_on == "train" and val_fn is not None):
        raise ValueError(f"stop_on={stop_on!r}: 'val' (with val_fn) or 'train' (without)")
    best_train = math.inf
    best, best_state, bad, epoch, train_loss = math.inf, None, 0, 0, math.nan
    bar = tqdm(range(epochs), desc=desc, leave=False, disable=not progress)
    for epoch in bar:
        module.train()
        order = train_idx[torch.randperm(len(train_idx), generator=rng, device=rng.device).to(train_idx.device)]
        # the epoch's loss sum stays on the device (float64, as a Python float would): no host sync per step, so the
        # host can queue steps ahead of a GPU. A NaN or inf loss makes the sum non-finite: checked once an epoch.
        total = None
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            loss = loss_fn(idx)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            step = loss.detach().double() * len(idx)
            total = step if total is None else total + step
        total_f = 0.0 if total is None else float(total)
        if not math.isfinite(total_f):
            raise RunError(f"the {desc} loss became {total_f} at epoch {epoch + 1}; {nan_hint}".rstrip("; "))
        train_loss = total_f / max(len(order), 1)
        if stop_on == "train":
            bar.set_postfix(train=f"{train_loss:.4g}")
            if train_loss < best_train:
                best_train, bad = train_loss, 0
            else:
                bad += 1
                if patience is not None and bad >= patience:
                    break
            continue
        if val_fn is None:
            continue
        val = val_fn()
        bar.set_postfix(train=f"{train_loss:.4g}", val=f"{val:.4g}")
        if val < best - 1e-3:
            best, bad = val, 0
            best_state = copy.deepcopy(module.state_dict())
        else:
            bad += 1
            if patience is not None and bad >= patience:
                break
    if best_state is not None:
        module.load_state_dict(best_state)
    return Trained(train_loss, best, epoch + 1)
