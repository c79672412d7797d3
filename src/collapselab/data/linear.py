"""The paper's linear-regression data: a fixed Gaussian design shared by every replicate chain."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..batch import Batch

DTYPE = torch.float64


@dataclass
class LinearData:
    """Real data for R chains: one fixed design X0 [n, d], targets y0 [R, n], and its SVD."""

    X0: Tensor  # [n, d]
    theta_star: Tensor  # [d]
    noise_std: float
    real: Batch  # x [R, n, d] (X0 expanded), y [R, n]
    singular_values: Tensor  # [d] mu_j of X0
    directions: Tensor  # [d, d] rows are the right singular vectors v_j
    bias_direction: Tensor | None = None  # [d] the seeded unit vector u of a noisy oracle's centre theta* + bias u

    def to(self, device: torch.device | str) -> "LinearData":
        return LinearData(self.X0.to(device), self.theta_star.to(device), self.noise_std, self.real.to(device),
                          self.singular_values.to(device), self.directions.to(device),
                          None if self.bias_direction is None else self.bias_direction.to(device))


def make_linear_data(
    dim: int, n_real: int, noise_std: float, theta_star: float, replicates: int, rng: torch.Generator
) -> LinearData:
    """Draw X0 ~ N(0, I_d) once and y0 = X0 theta* + noise independently for every chain."""
    X0 = torch.randn(n_real, dim, generator=rng, dtype=DTYPE)
    theta = torch.full((dim,), float(theta_star), dtype=DTYPE)
    noise = noise_std * torch.randn(replicates, n_real, generator=rng, dtype=DTYPE)
    y0 = X0 @ theta + noise
    _, S, Vh = torch.linalg.svd(X0, full_matrices=False)
    return LinearData(
        X0=X0,
        theta_star=theta,
        noise_std=float(noise_std),
        real=Batch(X0.expand(replicates, n_real, dim), y0),
        singular_values=S,
        directions=Vh,
    )
