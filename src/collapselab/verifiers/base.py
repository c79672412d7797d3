"""What verifiers share, and the one place they are built and checked: the reliability knob of noisy verdicts,
the selection and ranking keys' checks, and a built verifier against the written contract."""
from __future__ import annotations

import torch
from torch import Tensor

from ..components import build
from ..config import check_choice, check_number
from ..errors import ConfigError
from ..interfaces import BoundedScore, RankingVerifier, VerdictVerifier, Verifier
from ..sampling import tilted


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


# ----- the selection keys: checked here for every verifier (its constructor, then the built verifier) ----------
SELECTIONS = ("top", "softmax", "drs", "tilt")


def check_selection(selection: str, temperature: float, density_ratio: bool = False,
                    who: str = "this verifier") -> tuple[str, float]:
    """Validated ``verifier.selection`` / ``verifier.temperature``. ``density_ratio``: the verifier's score is
    log D/(1-D) of a real-vs-synthetic discriminator (what ``drs`` needs)."""
    selection = check_choice("verifier.selection", selection, SELECTIONS)
    temperature = check_number("verifier.temperature", temperature, 0.0)
    if selection == "drs" and not density_ratio:
        raise ConfigError(f"verifier.selection=drs accepts in proportion to D/(1-D), a discriminator's density ratio; "
                          f"{who}'s score is not one: use verifier.selection=softmax (or top)")
    if selection == "tilt" and temperature <= 0.0:
        raise ConfigError(f"verifier.selection=tilt accepts with probability exp((score - max) / temperature): "
                          f"verifier.temperature={temperature:g} would accept nothing; use a temperature > 0")
    return selection, temperature


# ----- building a verifier: the one place (build_verifier, what every run calls) ------------------------------------
def check_verifier(verifier: object, context: str) -> None:
    """A built verifier against the written contract (interfaces.Verifier, RankingVerifier): one ConfigError."""
    name = context.split(",")[0] if context.startswith("verifier=") else type(verifier).__name__
    if not isinstance(verifier, Verifier):
        raise ConfigError(f"{name} ({context}) does not follow collapselab.interfaces.Verifier: it needs a "
                          "keep_fraction attribute (None for verdicts, a share for ranking)")
    if tilted(verifier):
        if not isinstance(verifier, BoundedScore):
            raise ConfigError(f"verifier.selection=tilt needs a score with a known maximum (score_max); {name}'s has "
                              "none: rank instead (verifier.keep_fraction with selection=softmax)")
        check_selection(verifier.selection, verifier.temperature, verifier.density_ratio, who=name)
        return
    if verifier.keep_fraction is None:
        if not isinstance(verifier, VerdictVerifier):
            raise ConfigError(f"{name} gives no verdicts (no __call__(x, y, rng)): set verifier.keep_fraction to rank "
                              "its scores instead")
        return
    check_number("verifier.keep_fraction", verifier.keep_fraction, 0.0, 1.0, lo_open=True)
    if not isinstance(verifier, RankingVerifier):
        raise ConfigError(f"{name} ranks (keep_fraction={verifier.keep_fraction}) but does not "
                          "follow collapselab.interfaces.RankingVerifier: it needs score(x, y), selection, temperature "
                          "and density_ratio")
    check_selection(verifier.selection, verifier.temperature, verifier.density_ratio, who=name)


def build_verifier(node: dict, offer: dict, context: str) -> Verifier | None:
    """The verifier named by ``node`` (None for ``verifier=none``), built with the parts it names among ``offer``
    and checked against the contract."""
    if node.get("name") == "none":
        return None
    verifier = build(node, "verifier", offer=offer, context=context, protocol=Verifier)
    check_verifier(verifier, f"verifier={node.get('name')}, {context}")
    return verifier
