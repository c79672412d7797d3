"""The reliability knob shared by noisy verifiers."""
from __future__ import annotations

import torch
from torch import Tensor


def apply_reliability(own: Tensor, reliability: float, rng: torch.Generator) -> Tensor:
    """Keep each verdict with probability rho, else replace it by a coin at the current acceptance rate.

    ``own`` is bool [N] or [R, ...]; the rate is the share of the verifier's own acceptances per chain, so
    rho changes the information in the filter, not how much is kept.
    """
    if reliability >= 1.0:
        return own
    if own.dim() == 1:
        rate = own.float().mean()
    else:  # one rate per chain (the first axis)
        rate = own.flatten(1).float().mean(1).view(-1, *([1] * (own.dim() - 1)))
    u_keep = torch.rand(own.shape, generator=rng, device=own.device)
    u_coin = torch.rand(own.shape, generator=rng, device=own.device)
    coin = u_coin < rate
    return torch.where(u_keep < reliability, own, coin)
