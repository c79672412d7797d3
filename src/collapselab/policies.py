"""Data policies: how each generation's training set is built from real and synthetic data."""
from __future__ import annotations

from dataclasses import dataclass

from .batch import Batch
from .components import build


@dataclass(frozen=True)
class Policy:
    """``filtered``: draw until the verifier accepts enough; ``accumulate``: keep every earlier
    synthetic set; ``with_real``: include the real data in every training set. The sizes are read by
    the study: ``n_synthetic`` a generation (None: the study's default), plus ``growth`` per generation;
    ``max_candidates_factor`` caps the draws of a group at that many times its quota."""

    name: str
    filtered: bool
    accumulate: bool
    with_real: bool
    n_synthetic: int | None = None
    growth: int = 0
    max_candidates_factor: float = 200.0

    def next_training_set(self, real: Batch, synthetic: Batch, history: list[Batch]) -> Batch:
        """The training set of this generation; ``history`` holds earlier generations' synthetic sets."""
        parts = ([real] if self.with_real else []) + (list(history) if self.accumulate else []) + [synthetic]
        return Batch.cat(parts)


def build_policy(cfg: dict) -> Policy:
    """The policy of ``cfg["policy"]`` (its YAML names the class by ``_target_``)."""
    return build(cfg["policy"], "policy", drop=())
