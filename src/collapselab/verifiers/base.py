"""What verifiers share: the reliability knob of noisy verdicts, the ranking keys' checks."""
from __future__ import annotations

import torch
from torch import Tensor

from ..config import check_number
from ..errors import ConfigError
from ..sampling import check_selection


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


def ranking_keys(keep_fraction: float | None, selection: str, temperature: float, reliability: float = 1.0,
                 who: str = "this verifier", density_ratio: bool = False) -> float | None:
    """Checked ``verifier.keep_fraction`` (None: verdicts) with the keys that only ranking uses (``selection`` and
    ``temperature``; ``density_ratio``: the score is log D/(1-D), so ``drs`` is allowed)."""
    check_selection(selection, temperature, density_ratio=density_ratio, who=who)
    if keep_fraction is None:
        if selection == "tilt" and reliability < 1.0:
            raise ConfigError(f"verifier.reliability={reliability} flips verdicts, and verifier.selection=tilt draws its "
                              "own coins: use one (verifier.selection=top, or verifier.reliability=1.0)")
        if selection not in ("top", "tilt"):
            raise ConfigError(f"verifier.selection={selection} keeps a share of a scored pool: set "
                              "verifier.keep_fraction (null means per-candidate verdicts)")
        return None
    if selection == "tilt":
        raise ConfigError(f"verifier.selection=tilt accepts each candidate on its own coin, not a share of a pool: set "
                          f"verifier.keep_fraction=null (it is {keep_fraction})")
    kf = check_number("verifier.keep_fraction", keep_fraction, 0.0, 1.0, lo_open=True)
    if reliability < 1.0:
        raise ConfigError(f"verifier.reliability={reliability} flips verdicts, and verifier.keep_fraction={kf} ranks "
                          "scores instead: use one (verifier.keep_fraction=null, or verifier.reliability=1.0)")
    return kf
