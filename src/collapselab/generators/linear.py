"""OLS 'generator' for the linear study, batched over R independent chains."""
from __future__ import annotations

import torch
from torch import Tensor

from ..batch import Batch
from ..checkpoint import fitting_state
from ..errors import ConfigError, RunError


class LinearGenerator:
    """theta [R, d] fit by OLS; samples y = x^T theta + N(0, sigma^2) on a singular or Gaussian design."""

    def __init__(self, directions: Tensor, noise_std: float, replicates: int, design: str = "singular") -> None:
        if design not in ("singular", "gaussian"):
            raise ConfigError(f"generator.design={design!r} is invalid: choose singular or gaussian")
        self.directions = directions  # [d, d]
        self.noise_std = float(noise_std)
        self.design = design
        dim = directions.shape[1]
        self.theta = torch.zeros(replicates, dim, dtype=directions.dtype, device=directions.device)

    @property
    def n_groups(self) -> int:
        """Quota groups: one per singular direction, or a single group for the Gaussian design."""
        return self.directions.shape[0] if self.design == "singular" else 1

    def fit(self, train: Batch, rng: torch.Generator | None = None) -> dict[str, float]:
        """Batched OLS: x [R, N, d], y [R, N] -> theta [R, d]."""
        x, y = train.x, train.y
        gram = x.transpose(1, 2) @ x
        rhs = (x.transpose(1, 2) @ y.unsqueeze(-1)).squeeze(-1)
        try:
            self.theta = torch.linalg.solve(gram, rhs)
        except RuntimeError as e:  # singular Gram matrix
            raise RunError(f"OLS failed: the training design is rank deficient ({e}); use more samples") from e
        if not torch.isfinite(self.theta).all():
            raise RunError("OLS produced non-finite parameters; check data.noise_std and the training set")
        resid = y - (x @ self.theta.unsqueeze(-1)).squeeze(-1)
        return {"train_mse": float(resid.pow(2).mean())}

    def propose(self, m: int, rng: torch.Generator) -> tuple[Tensor, Tensor]:
        """m candidates per chain and group: y [R, G, m] and x broadcastable to [R, G, m, d]."""
        R, d = self.theta.shape
        dev, dt = self.theta.device, self.theta.dtype
        if self.design == "singular":  # x = v_j for every candidate of group j: [1, d, 1, d], never copied
            x = self.directions[None, :, None, :]
            mean = (self.theta @ self.directions.T)[:, :, None].expand(R, d, m)
        else:
            x = torch.randn(R, 1, m, d, generator=rng, dtype=dt, device=dev)
            mean = (x @ self.theta[:, None, :, None]).squeeze(-1)
        y = mean + self.noise_std * torch.randn(mean.shape, generator=rng, dtype=dt, device=dev)
        return x, y

    def state_dict(self) -> dict[str, Tensor]:
        return {"theta": self.theta.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        state = fitting_state(state, self.state_dict())
        self.theta = state["theta"].to(self.directions.device, self.directions.dtype)
