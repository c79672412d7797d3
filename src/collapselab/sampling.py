"""The one draw path of every study: candidates from the previous generator, verified or ranked, per-group quotas.

``draw`` is what the loop calls each generation. A study supplies the candidate source (its generator's
``propose``), the quota per chain and group (``study.quota``), how its verifier sees candidates
(``study.draw_layout``) and, optionally, metrics of the drawn set (``study.draw_metrics``); the verifier gives
verdicts (``collect``) or scores (``rank``); the same code applies ``keep_fraction``, ``selection`` with
``temperature``, the quotas, the verify stream and the acceptance rate everywhere.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .batch import Batch
from .config import check_memory
from .errors import ConfigError, RunError
from .interfaces import RankingVerifier, Verifier

# propose(m, rng) -> (x broadcastable to [R, G, m, *feat], y [R, G, m]); verify(x, y, rng) -> bool [R, G, m]
Propose = Callable[[int, torch.Generator], tuple[Tensor, Tensor]]
Verify = Callable[[Tensor, Tensor, torch.Generator], Tensor]


@dataclass
class Collected:
    """Accepted samples ordered by (chain, group), plus what the draw cost."""

    x: Tensor  # [R, K, *feat] with K = sum of quotas of one chain
    y: Tensor  # [R, K]
    proposed: Tensor  # [R] candidates drawn per chain
    accepted: Tensor | None  # [R] candidates the verifier accepted per chain (beyond quota); None: no rate
    first_x: Tensor  # the first round's candidates of chain 0, [G*m, *feat]
    first_y: Tensor
    first_mask: Tensor  # the verifier's verdicts on them
    extra: dict | None = None  # task metrics about the draw (e.g. verifier_agreement), merged into the row

    @property
    def accept_rate(self) -> Tensor:
        """[R] share of candidates accepted."""
        return self.accepted.double() / self.proposed.clamp(min=1).double()


def _too_few(n_acc: Tensor, drawn: Tensor, need: Tensor, cap: int, hint: str) -> RunError:
    """The error of a verifier that accepts too little: its observed rate and the short groups."""
    r_obs = float(n_acc.sum()) / max(float(drawn.sum()), 1.0)
    return RunError(
        f"the verifier accepted too few candidates: acceptance rate {r_obs:.4f} "
        f"({int(n_acc.sum())} of {int(drawn.sum())}), {int((need > 0).sum())} group(s) still short of their "
        f"quota after {cap} candidates each. {hint}".strip()
    )


def collect(
    propose: Propose,
    verify: Verify | None,
    quota: Tensor,
    rng: torch.Generator,
    *,
    max_factor: float = 200.0,
    max_round_elements: int = 4_000_000,
    hint: str = "",
) -> Collected:
    """Keep the first ``quota[r, g]`` accepted candidates of every chain r and group g.

    Candidates are drawn in vectorised rounds sized from the acceptance rate seen so far. If a group
    has drawn ``max_factor`` times its quota and is still short, raise RunError with the rate.
    """
    R, G = quota.shape
    device = quota.device
    quota = quota.long()
    have = torch.zeros(R, G, dtype=torch.long, device=device)
    drawn = torch.zeros(R, G, dtype=torch.long, device=device)
    n_acc = torch.zeros(R, G, dtype=torch.long, device=device)
    kept_x, kept_y, kept_gid = [], [], []
    first = None
    qmax = int(quota.max())
    cap = max(int(math.ceil(max_factor * qmax)), 1)
    rate = 1.0
    while True:
        need = quota - have
        if int(need.max()) <= 0:
            break
        if int(drawn.max()) >= cap:
            raise _too_few(n_acc, drawn, need, cap, hint)
        m = int(math.ceil(int(need.max()) / max(rate, 1e-3) * 1.15)) + 8
        m = max(1, min(m, max_round_elements // max(R * G, 1), cap))
        x, y = propose(m, rng)
        acc = torch.ones_like(y, dtype=torch.bool) if verify is None else verify(x, y, rng)
        x = x.expand(*y.shape, *x.shape[3:])  # a view: only the kept rows are ever copied
        if first is None:
            first = (x[0].reshape(G * m, *x.shape[3:]), y[0].reshape(-1), acc[0].reshape(-1))
        # rank of each accepted candidate within its (chain, group) in draw order
        rank = torch.cumsum(acc.long(), dim=2)
        keep = acc & (rank <= need.clamp(min=0).unsqueeze(-1))
        gid = (torch.arange(R, device=device)[:, None] * G + torch.arange(G, device=device)[None, :])
        gid = gid.unsqueeze(-1).expand(R, G, m)
        kept_x.append(x[keep])
        kept_y.append(y[keep])
        kept_gid.append(gid[keep])
        have += keep.sum(dim=2)
        drawn += m
        n_acc += acc.sum(dim=2)
        rate = max(float(n_acc.sum()) / float(drawn.sum()), 1e-3)
    if len(kept_x) == 1:  # one round: the kept rows are already in (chain, group) order
        x, y = kept_x[0], kept_y[0]
    else:
        order = torch.sort(torch.cat(kept_gid), stable=True).indices
        x = torch.cat(kept_x)[order]
        y = torch.cat(kept_y)[order]
    K = int(quota[0].sum())
    return Collected(x.reshape(R, K, *x.shape[1:]), y.reshape(R, K), drawn.sum(1), n_acc.sum(1), *first)


# ----- ranking verifiers: keep quota[g] of each group's pool by score (one implementation for all) ------------
def rank_select(scores: Tensor, quota: Tensor) -> Tensor:
    """scores [G, M] -> bool [G, M] selecting the top quota[g] of each row (ties broken by position)."""
    order = scores.argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(scores.shape[1], device=scores.device).expand_as(order))
    return ranks < quota.view(-1, 1)


def select(scores: Tensor, quota: Tensor, selection: str = "top", temperature: float = 1.0,
           rng: torch.Generator | None = None) -> Tensor:
    """scores [G, M] -> bool [G, M] keeping quota[g] candidates of each group.

    ``top``: the highest scores. ``softmax``: a Plackett-Luce (Bradley-Terry / Luce choice) draw without
    replacement, each pick with probability proportional to exp(score / temperature), done exactly by the
    Gumbel-top-k trick (scores / T + Gumbel noise, then the top); temperature 0 is ``top``, a large one a
    uniform subsample. ``drs``: the same draw at temperature 1 on a discriminator's logit, so a candidate is
    picked in proportion to D/(1-D) = p_data/p_model (discriminator rejection sampling, without replacement).
    The noise comes from ``rng`` (the run's verify stream).
    """
    if selection == "tilt":
        raise ConfigError("verifier.selection=tilt gives per-candidate verdicts, not a share of a pool: set "
                          "verifier.keep_fraction=null")
    if selection == "top" or (selection == "softmax" and temperature == 0.0):
        return rank_select(scores, quota)
    t = 1.0 if selection == "drs" else float(temperature)
    u = torch.rand(scores.shape, generator=rng, device=rng.device if rng is not None else "cpu",
                   dtype=torch.float64).to(scores.device)
    gumbel = -torch.log(-torch.log(u.clamp(min=1e-300)))
    return rank_select(scores.double() / t + gumbel, quota)


def pool_size(quota: int, keep_fraction: float) -> int:
    """Candidates to draw per group so that the kept ``keep_fraction`` holds ``quota``."""
    return int(math.ceil(quota / keep_fraction - 1e-9))


# ----- the one draw path --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DrawLayout:
    """How a study's candidates meet its verifier and become its synthetic set."""

    flat: bool  # the verifier sees x [N, *feat], y [N] (MNIST); else x broadcastable to [R, G, m, *feat], y [R, G, m]
    keep_chains: bool  # the synthetic Batch keeps the chain axis, x [R, K, *feat]; else (R = 1) x [K, *feat]
    round_elements: int = 4_000_000  # the most candidates (over chains and groups) a verdict round proposes
    hint: str = ""  # what to change when a verdict verifier accepts too few


def tilted(verifier: Verifier | None) -> bool:
    """Whether the verifier's verdicts are ``selection=tilt`` coins on its bounded score."""
    return isinstance(verifier, RankingVerifier) and verifier.keep_fraction is None and verifier.selection == "tilt"


def tilt_verdicts(verifier: RankingVerifier, x: Tensor, y: Tensor, rng: torch.Generator) -> Tensor:
    """bool shaped like y: each candidate accepted on its own coin with probability exp((score - score_max) / T),
    so the accepted ones are exact samples of p_model(y) exp(score / T) / Z (rejection sampling of the tilted law)."""
    log_p = (verifier.score(x, y).double() - verifier.score_max) / verifier.temperature
    u = torch.rand(y.shape, generator=rng, device=rng.device, dtype=torch.float64).to(y.device)
    return u.log() < log_p.clamp(max=0.0)


def verifier_in_use(verifier: Verifier | None, filters: bool) -> bool:
    """Whether a generation's draw runs the verifier: the policy filters and the verifier keeps less than all.
    A verifier not in use is not trained or run, and the row's accept_rate is null (every study alike)."""
    return verifier is not None and filters and verifier.keep_fraction != 1.0


def _flat(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """[R, G, m, *feat] (or a broadcastable view) and [R, G, m] -> [N, *feat] and [N]."""
    return x.expand(*y.shape, *x.shape[3:]).reshape(-1, *x.shape[3:]), y.reshape(-1)


def rank(propose: Propose, verifier: RankingVerifier, quota: Tensor, rng: torch.Generator,
         rng_verify: torch.Generator, flat: bool) -> Collected:
    """Draw quota.max() / keep_fraction candidates per chain and group, keep quota[r, g] of each by the verifier's
    ``selection`` (noise from ``rng_verify``); in (chain, group, draw) order."""
    R, G = quota.shape
    m = pool_size(int(quota.max()), verifier.keep_fraction)
    x, y = propose(m, rng)
    scores = verifier.score(*_flat(x, y)) if flat else verifier.score(x, y)
    sel = select(scores.reshape(R * G, m), quota.reshape(-1), verifier.selection, verifier.temperature,
                 rng_verify).view(R, G, m)
    x = x.expand(*y.shape, *x.shape[3:])  # a view: only the kept rows are copied
    K = int(quota[0].sum())
    return Collected(x=x[sel].reshape(R, K, *x.shape[3:]), y=y[sel].reshape(R, K),
                     proposed=torch.full((R,), G * m, dtype=torch.long), accepted=sel.view(R, -1).sum(1).cpu(),
                     first_x=x[0].reshape(G * m, *x.shape[3:]), first_y=y[0].reshape(-1), first_mask=sel[0].reshape(-1))


def draw(study, model, generation: int, rng: torch.Generator, rng_verify: torch.Generator) -> tuple[Batch, Collected]:
    """This generation's synthetic set and what its draw cost: candidates from ``rng`` (the sample stream), a
    verifier's coins and selection noise from ``rng_verify`` (the verify stream). Reads ``study.quota``,
    ``study.verifier``, ``study.policy``, ``study.draw_layout`` and ``study.draw_metrics``."""
    quota, v, lay = study.quota(generation), study.verifier, study.draw_layout
    used = verifier_in_use(v, study.policy.filters)
    if used and v.keep_fraction is not None:
        col = rank(model.propose, v, quota, rng, rng_verify, lay.flat)
    else:
        judge = (lambda x, y, coins: tilt_verdicts(v, x, y, coins)) if tilted(v) else v  # chosen once a draw

        def verify(x: Tensor, y: Tensor, _rng: torch.Generator) -> Tensor:
            return judge(*_flat(x, y), rng_verify).view(y.shape) if lay.flat else judge(x, y, rng_verify)

        col = collect(model.propose, verify if used else None, quota, rng,
                      max_factor=study.policy.max_candidates_factor, max_round_elements=lay.round_elements,
                      hint=lay.hint)
        if not used:
            col.accepted, col.first_mask = None, None  # nothing was verified: no acceptance rate
    batch = Batch(col.x, col.y) if lay.keep_chains else Batch(col.x[0], col.y[0])
    col.extra = study.draw_metrics(batch)
    return batch, col


def check_pool(verifier: Verifier | None, filters: bool, largest_quota: int, groups: int, chains: int,
               bytes_per_candidate: int) -> None:
    """A ranking verifier draws quota / keep_fraction candidates per group at once: refuse a pool (at the largest
    quota the run will ask for) over the memory budget before any work."""
    if not verifier_in_use(verifier, filters) or verifier.keep_fraction is None:
        return
    per_group = int(math.ceil(largest_quota / groups))
    m = pool_size(per_group, verifier.keep_fraction)
    n = chains * groups * m
    check_memory(n * bytes_per_candidate, f"the candidate pool of verifier.keep_fraction={verifier.keep_fraction:g} "
                 f"({n:,} candidates: {per_group:,} kept per group of {groups} x {chains} chain(s))",
                 "Raise verifier.keep_fraction, or lower policy.n_synthetic (or its growth, or the replicates).")
