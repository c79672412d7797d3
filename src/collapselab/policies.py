"""Data policies: how each generation's training set is built from real and synthetic data.

A policy is behaviour, not a set of flags: it says how many synthetic samples it asks for a generation,
whether they are drawn through the verifier (``filters``), whether it keeps earlier synthetic sets
(``keeps_history``), which closed form of a study describes it (``closed_form``), and it builds the
training set with its own seeded rng. A researcher's policy subclasses ``Policy`` (see
examples/custom_policy) and is named by ``_target_`` in its YAML.
"""
from __future__ import annotations

import torch

from .batch import Batch
from .components import build
from .config import check_int, check_label, check_number


class Policy:
    """Base class: this generation's synthetic set alone, unfiltered (``replace``).

    ``n_synthetic`` synthetic samples a generation (None: the study's default), plus ``growth`` each
    generation after the first (a linear schedule); ``max_candidates_factor`` caps the draws of a group
    at that many times its quota. A study's unit is its own (an image, a sample per direction, a sample).
    """

    filters: bool = False  # draw candidates through the verifier until the quota is accepted
    keeps_history: bool = False  # next_training_set receives every earlier synthetic set
    uses_real: bool = False  # every training set holds real data (so a tiny synthetic set is still fittable)
    # the closed form a study may report for this policy: "replace", "verify", or None (a new policy
    # reports none until it declares one)
    closed_form: str | None = "replace"

    def __init__(self, name: str = "", n_synthetic: int | None = None, growth: int = 0,
                 max_candidates_factor: float = 200.0) -> None:
        self.name = check_label("policy.name", name)
        self.n_synthetic = None if n_synthetic is None else check_int("policy.n_synthetic", n_synthetic, 1)
        self.growth = check_int("policy.growth", growth, 0)
        self.max_candidates_factor = check_number("policy.max_candidates_factor", max_candidates_factor, 1.0)

    def synthetic_size(self, generation: int, default: int) -> int:
        """Synthetic samples generation ``generation`` (>= 1) asks for, in the study's unit."""
        return (self.n_synthetic or default) + self.growth * (generation - 1)

    def theory(self, verified: bool) -> str | None:
        """The closed form that describes this run (``verified``: a verifier is used), or None.

        A filtering policy without a verifier is unfiltered retraining; a growing schedule has no closed form.
        """
        if self.growth or self.closed_form is None:
            return None
        if self.closed_form == "verify" and not verified:
            return "replace"
        return self.closed_form

    def largest_training_set(self, n_real: int, default: int, generations: int, unit: int = 1) -> int:
        """Samples in the largest training set this policy builds over ``generations`` (for memory checks)."""
        last = self.synthetic_size(max(generations, 1), default) * unit
        return max(n_real, last)

    def next_training_set(self, real: Batch, synthetic: Batch, history: list[Batch], rng: torch.Generator) -> Batch:
        """The training set of this generation; ``history`` holds earlier synthetic sets when ``keeps_history``."""
        return synthetic


class ReplacePolicy(Policy):
    """Only this generation's synthetic samples, unfiltered: the classic collapse setting."""


class VerifyPolicy(Policy):
    """Only this generation's accepted samples; candidates are drawn until the quota is accepted."""

    filters = True
    closed_form = "verify"


class AccumulatePolicy(Policy):
    """Real data plus every synthetic sample produced so far, unfiltered."""

    keeps_history = True
    uses_real = True
    closed_form = None

    def largest_training_set(self, n_real: int, default: int, generations: int, unit: int = 1) -> int:
        return n_real + sum(self.synthetic_size(t, default) * unit for t in range(1, generations + 1))

    def next_training_set(self, real: Batch, synthetic: Batch, history: list[Batch], rng: torch.Generator) -> Batch:
        return Batch.cat([real, *history, synthetic])


class VerifyAccumulatePolicy(AccumulatePolicy):
    """Real data plus every accepted synthetic sample so far."""

    filters = True


def build_policy(cfg: dict) -> Policy:
    """The policy of ``cfg["policy"]`` (its YAML names the class by ``_target_``)."""
    return build(cfg["policy"], "policy", drop=())
