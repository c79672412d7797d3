"""The Gaussian toy model's data: n samples of N(mu*, sigma^2) per replicate chain (x = 1, the intercept)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..batch import Batch

DTYPE = torch.float64


@dataclass
class GaussianData:
    """Real data for R chains, and the ground truth an oracle knows (the d = 1 case of the linear data)."""

    real: Batch  # x [R, n, 1] (ones), y [R, n]
    theta_star: Tensor  # [1] mu*
    noise_std: float  # sigma
    bias_direction: Tensor  # [1] = +1: a noisy oracle's centre is mu* + bias


def make_gaussian_data(n_real: int, mean: float, std: float, replicates: int, rng: torch.Generator,
                       device: torch.device) -> GaussianData:
    """y = mu* + sigma * N(0, 1), [R, n], drawn on the CPU from ``rng`` then moved to ``device``."""
    noise = torch.randn(replicates, n_real, generator=rng, dtype=DTYPE)
    y = (mean + std * noise).to(device)
    real = Batch(torch.ones(*y.shape, 1, dtype=DTYPE, device=device), y)
    one = torch.ones(1, dtype=DTYPE, device=device)
    return GaussianData(real, mean * one, float(std), one)
