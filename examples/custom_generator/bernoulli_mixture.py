"""A researcher's own MNIST generator, outside the package: one independent-Bernoulli image per class.

The simplest class-conditional model of binary MNIST: pixel j of class c is Bernoulli(p_cj), with p the
(smoothed) pixel frequencies of the class in the training set. It drops into the MNIST study with this
module and one YAML (conf/generator/bernoulli_mixture.yaml). It offers no ``batch_nelbo`` and no
``decode_mean``, so ``test_nelbo`` and ``fid_mean`` are null in its rows.
"""
from __future__ import annotations

import torch
from torch import Tensor

from collapselab.batch import Batch
from collapselab.data.mnist import IMAGE_SHAPE, N_CLASSES
from collapselab.errors import ConfigError


class BernoulliMixture:
    """p [10, 1, 28, 28]: per-class pixel probabilities, fitted in closed form."""

    conditional = True  # samples carry their class label

    def __init__(self, device: torch.device, progress: bool = True, smoothing: float = 1.0) -> None:
        if not isinstance(smoothing, (int, float)) or smoothing < 0:
            raise ConfigError(f"generator.smoothing={smoothing!r} is invalid: it must be a number >= 0")
        self.device, self.alpha = device, float(smoothing)
        self.p = torch.full((N_CLASSES, *IMAGE_SHAPE), 0.5, device=device)

    def fit(self, train: Batch, rng: torch.Generator) -> dict[str, float]:
        """x [N, 1, 28, 28] in {0, 1}, y [N] -> p = (pixel counts + alpha) / (class count + 2 alpha)."""
        x, y = train.x.to(self.device).float(), train.y.to(self.device)
        counts = torch.zeros_like(self.p).index_add_(0, y, x)
        n = torch.bincount(y, minlength=N_CLASSES).view(-1, 1, 1, 1).float()
        self.p = (counts + self.alpha) / (n + 2 * self.alpha).clamp(min=1e-12)
        return {}

    def decode(self, y: Tensor, rng: torch.Generator) -> Tensor:
        """Binary images [N, 1, 28, 28] for labels y [N]."""
        return torch.bernoulli(self.p[y.to(self.device)], generator=rng)

    def sample(self, n: int, rng: torch.Generator) -> Batch:
        y = torch.arange(n, device=self.device) % N_CLASSES
        return Batch(self.decode(y, rng), y)

    def propose(self, m: int, rng: torch.Generator) -> tuple[Tensor, Tensor]:
        """m candidates per class: x [1, 10, m, 1, 28, 28], y [1, 10, m]."""
        y = torch.arange(N_CLASSES, device=self.device).repeat_interleave(m)
        return self.decode(y, rng).view(1, N_CLASSES, m, *IMAGE_SHAPE), y.view(1, N_CLASSES, m)

    def state_dict(self) -> dict:
        return {"p": self.p.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.p = state["p"].to(self.device)
