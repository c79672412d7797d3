"""A researcher's own policy, outside the package: train on the synthetic sets of the last few generations.

A sliding window between `replace` (window 1) and `accumulate` without real data (window = every
generation): each generation trains on its own synthetic set plus the ``window - 1`` sets before it. It
subclasses ``collapselab.policies.Policy``, so it inherits the size keys (``n_synthetic``, ``growth``,
``max_candidates_factor``), declares ``keeps_history`` (the loop hands it the earlier synthetic sets and
resume keeps them on disk) and no closed form: the studies report no theory for it rather than another
policy's. Its YAML (conf/policy/window.yaml) names it by ``_target_``; no file under src/ or conf/ names it.
"""
from __future__ import annotations

import torch

from collapselab.batch import Batch
from collapselab.config import check_bool, check_int
from collapselab.policies import Policy


class WindowPolicy(Policy):
    """This generation's synthetic set and the ``window - 1`` before it (generation 1 has only its own)."""

    keeps_history = True
    closed_form = None  # no study's closed form describes this loop

    def __init__(self, window: int = 2, filter: bool = False, **sizes) -> None:
        super().__init__(**sizes)
        self.window = check_int("policy.window", window, 1)
        self.filters = check_bool("policy.filter", filter)

    def largest_training_set(self, n_real: int, default: int, generations: int, unit: int = 1) -> int:
        last = range(max(generations - self.window + 1, 1), generations + 1)
        return max(n_real, sum(self.synthetic_size(t, default) * unit for t in last))

    def next_training_set(self, real: Batch, synthetic: Batch, history: list[Batch], rng: torch.Generator) -> Batch:
        return Batch.cat(history[max(len(history) - self.window + 1, 0):] + [synthetic])
