"""A researcher's own verifier, outside the package: it knows only the real data.

It fits ordinary least squares on generation 0's real set (per replicate chain) and accepts a candidate
(x, y) iff |y - x^T theta_real| <= width * ||x||. On the linear study this is a noisy oracle whose
bias is the real-data estimation error; on the Gaussian study (x = 1) it is an interval around the
real sample mean. The class follows ``collapselab.interfaces.Verifier``; its YAML (conf/verifier/
real_fit.yaml) names it by ``_target_``; it receives the run's ``data`` part because its signature names it.
"""
from __future__ import annotations

import torch
from torch import Tensor

from collapselab.errors import ConfigError


class RealFitVerifier:
    """Per-sample verdicts (``keep_fraction = None``) around the real data's least-squares fit."""

    keep_fraction = None  # verdicts, not a ranking

    def __init__(self, data, width: float = 1.0) -> None:
        if getattr(data, "theta_star", None) is None:  # regression data (linear, gaussian) carry theta*
            raise ConfigError("verifier=real_fit needs regression data with replicate chains: use it with "
                              "generator=linear or generator=gaussian")
        if not isinstance(width, (int, float)) or not width > 0:
            raise ConfigError(f"verifier.width={width!r} is invalid: it must be a number > 0")
        self.width = float(width)
        real = data.real
        # theta_real [R, d]: least squares on each chain's real set x [R, n, d], y [R, n]
        self.center = torch.linalg.lstsq(real.x, real.y.unsqueeze(-1)).solution.squeeze(-1)

    def __call__(self, x: Tensor, y: Tensor, rng: torch.Generator) -> Tensor:
        """x broadcastable to [R, G, m, d], y [R, G, m] -> bool [R, G, m]."""
        fitted = (x * self.center[:, None, None, :]).sum(-1)
        return (y - fitted).abs() <= self.width * x.norm(dim=-1)

    def state_dict(self) -> dict:
        return {"center": self.center.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.center = state["center"].to(self.center)
