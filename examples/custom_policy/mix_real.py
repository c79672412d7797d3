"""A researcher's own policy, outside the package: a fixed share of the real data in every training set.

Each generation trains on ``real_fraction`` of the real set (a fresh seeded subsample, drawn from the
policy's own rng stream) plus this generation's synthetic set, drawn through the verifier when
``filter=true``. It subclasses ``collapselab.policies.Policy``, so it inherits the size keys
(``n_synthetic``, ``growth``, ``max_candidates_factor``) and declares no closed form: the studies
report no theory for it rather than another policy's. Its YAML (conf/policy/mix_real.yaml) names it by
``_target_``; no file under src/ or conf/ names it.
"""
from __future__ import annotations

import math

import torch

from collapselab.batch import Batch
from collapselab.config import check_bool, check_number
from collapselab.policies import Policy


class MixRealPolicy(Policy):
    """real_fraction x the real set (subsampled with the policy's rng) + this generation's synthetic set."""

    uses_real = True
    closed_form = None  # no study's closed form describes this loop

    def __init__(self, real_fraction: float = 0.5, filter: bool = False, **sizes) -> None:
        super().__init__(**sizes)
        self.real_fraction = check_number("policy.real_fraction", real_fraction, 0.0, 1.0, lo_open=True)
        self.filters = check_bool("policy.filter", filter)

    def largest_training_set(self, n_real: int, default: int, generations: int, unit: int = 1) -> int:
        return math.ceil(self.real_fraction * n_real) + super().largest_training_set(0, default, generations, unit)

    def next_training_set(self, real: Batch, synthetic: Batch, history: list[Batch], rng: torch.Generator) -> Batch:
        k = math.ceil(self.real_fraction * len(real))
        idx = torch.randperm(len(real), generator=rng, device=rng.device)[:k].to(real.y.device)
        return Batch.cat([real.take(idx), synthetic])
