"""Verifiers for the linear study: a knowledge centre theta_c and a radius r."""
from __future__ import annotations

import torch
from torch import Tensor

from ..theory import SQRT_2_OVER_PI
from .base import apply_reliability


def unit_vector(dim: int, rng: torch.Generator, dtype: torch.dtype = torch.float64) -> Tensor:
    """A seeded direction u with ||u|| = 1, [d]."""
    u = torch.randn(dim, generator=rng, dtype=dtype)
    return u / u.norm()


class CenterVerifier:
    """Accept (x, y) iff |y - x^T theta_c| <= r ||x|| + sigma sqrt(2/pi); optional reliability rho.

    ``oracle`` is theta_c = theta*; ``noisy_oracle`` is theta_c = theta* + bias * u.
    """

    def __init__(self, center: Tensor, radius: float | Tensor, noise_std: float, reliability: float = 1.0) -> None:
        self.center = center  # [d] or [R, d] (one centre per chain)
        self.radius = radius if isinstance(radius, Tensor) else float(radius)  # scalar or [R]
        self.noise_std = float(noise_std)
        self.reliability = float(reliability)

    def __call__(self, x: Tensor, y: Tensor, rng: torch.Generator) -> Tensor:
        """x [..., d] broadcastable to y [R, ...] + [d] -> bool, shaped like y (chains on the first axis)."""
        lead = [1] * (y.dim() - 1)
        c = self.center if self.center.dim() == 1 else self.center.view(-1, *lead, self.center.shape[-1])
        resid = (y - (x * c).sum(-1)).abs()
        r = self.radius.view(-1, *lead) if isinstance(self.radius, Tensor) else self.radius
        own = resid <= r * x.norm(dim=-1) + self.noise_std * SQRT_2_OVER_PI
        return apply_reliability(own, self.reliability, rng)

    def state_dict(self) -> dict:
        return {"center": self.center.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.center = state["center"].to(self.center)
