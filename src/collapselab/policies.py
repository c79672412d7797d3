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
from .config import check_bool, check_int, check_label, check_number
from .errors import ConfigError


class Policy:
    """Base class: this generation's synthetic set alone, unfiltered (``replace``).

    ``n_synthetic`` synthetic samples a generation (None: the study's default), plus ``growth`` each
    generation after the first (a linear schedule); ``max_candidates_factor`` caps the draws of a group
    at that many times its quota. A study's unit is its own (an image, a sample per direction, a sample).
    """

    filters: bool = False  # draw candidates through the verifier until the quota is accepted
    keeps_history: bool = False  # next_training_set receives every earlier synthetic set
    uses_real: bool = False  # every training set holds real data (so a tiny synthetic set is still fittable)
    fresh: bool = False  # next_training_set's ``real`` is new real data each generation (study.fresh_real)
    n_fresh: int | None = None  # fresh real samples a generation (None: the study's data.n_real)
    # the closed form a study may report for this policy: "replace", "verify", "accumulate", "mix", "fresh", or None
    # (a new policy reports none until it declares one)
    closed_form: str | None = None

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
        if not verified and self.closed_form in ("verify", "verify_accumulate"):
            return "replace" if self.closed_form == "verify" else "accumulate"
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

    closed_form = "replace"


class VerifyPolicy(Policy):
    """Only this generation's accepted samples; candidates are drawn until the quota is accepted."""

    filters = True
    closed_form = "verify"


class AccumulatePolicy(Policy):
    """Real data plus every synthetic sample produced so far, unfiltered."""

    keeps_history = True
    uses_real = True
    closed_form = "accumulate"

    def largest_training_set(self, n_real: int, default: int, generations: int, unit: int = 1) -> int:
        return n_real + sum(self.synthetic_size(t, default) * unit for t in range(1, generations + 1))

    def next_training_set(self, real: Batch, synthetic: Batch, history: list[Batch], rng: torch.Generator) -> Batch:
        return Batch.cat([real, *history, synthetic])


class VerifyAccumulatePolicy(AccumulatePolicy):
    """Real data plus every accepted synthetic sample so far."""

    filters = True
    closed_form = "verify_accumulate"  # the Gaussian study with the exact density ratio; without a verifier `accumulate`


class _FilterChoice(Policy):
    """A policy whose synthetic share goes through the verifier when ``filter`` (and a verifier is set)."""

    def __init__(self, filter: bool = True, **sizes) -> None:
        super().__init__(**sizes)
        self.filters = check_bool("policy.filter", filter)

    def theory(self, verified: bool) -> str | None:
        """The closed form describes the unfiltered loop only (a verifier that filters has none)."""
        return None if self.filters and verified else super().theory(verified)


class MixPolicy(_FilterChoice):
    """Every training set after generation 0 holds a share ``real_fraction`` = p of real samples and the rest this
    generation's synthetic samples (Bertrand et al. 2024; their lambda, synthetic per real sample, is (1-p)/p).

    m synthetic samples (``n_synthetic``; None: (1-p) x the study's default size, so that a training set is as
    large as `replace`'s) sit beside k = round(m p / (1-p)) real ones. The real share is drawn from the real set
    each generation with the policy's rng: every real sample k // n times plus a uniform subsample of k % n
    (a share larger than the real set repeats it; a smaller one is a new subsample each generation).
    """

    uses_real = True
    closed_form = "mix"

    def __init__(self, real_fraction: float = 0.5, filter: bool = True, **sizes) -> None:
        super().__init__(filter=filter, **sizes)
        self.real_fraction = check_number("policy.real_fraction", real_fraction, 0.0, 1.0, lo_open=True)
        if self.real_fraction >= 1.0:
            raise ConfigError("policy.real_fraction=1 leaves no synthetic share: use a value in (0, 1), or "
                              "policy=replace generations=0 for real data alone")

    def synthetic_size(self, generation: int, default: int) -> int:
        first = self.n_synthetic or max(1, round((1.0 - self.real_fraction) * default))
        return first + self.growth * (generation - 1)

    def real_count(self, n_synthetic: int) -> int:
        """Real samples beside ``n_synthetic`` synthetic ones."""
        return max(1, round(n_synthetic * self.real_fraction / (1.0 - self.real_fraction)))

    def largest_training_set(self, n_real: int, default: int, generations: int, unit: int = 1) -> int:
        m = self.synthetic_size(max(generations, 1), default) * unit
        return max(n_real, m + self.real_count(m))

    def next_training_set(self, real: Batch, synthetic: Batch, history: list[Batch], rng: torch.Generator) -> Batch:
        return Batch.cat([real.repeat_to(self.real_count(len(synthetic)), rng), synthetic])


class FreshPolicy(_FilterChoice):
    """Fresh real data every generation (the fresh-data loop of Alemohammad et al. 2024): ``n_fresh`` real
    samples never used before (None: data.n_real), plus this generation's synthetic set."""

    uses_real = True
    fresh = True
    closed_form = "fresh"

    def __init__(self, n_fresh: int | None = None, filter: bool = True, **sizes) -> None:
        super().__init__(filter=filter, **sizes)
        self.n_fresh = None if n_fresh is None else check_int("policy.n_fresh", n_fresh, 1)

    def largest_training_set(self, n_real: int, default: int, generations: int, unit: int = 1) -> int:
        return (self.n_fresh or n_real) + self.synthetic_size(max(generations, 1), default) * unit

    def next_training_set(self, real: Batch, synthetic: Batch, history: list[Batch], rng: torch.Generator) -> Batch:
        return Batch.cat([real, synthetic])


class AccumulateSubsamplePolicy(_FilterChoice):
    """The pool of real data and every synthetic sample so far, of which each generation trains on a seeded
    uniform subsample as large as this generation's synthetic set (Kazdan et al. 2024, "Collapse or Thrive?"),
    each chain its own."""

    keeps_history = True
    closed_form = "accumulate_subsample"  # the Gaussian study's (theory.gaussian_accumulate_subsample); unfiltered only

    def __init__(self, filter: bool = False, **sizes) -> None:
        super().__init__(filter=filter, **sizes)

    def largest_training_set(self, n_real: int, default: int, generations: int, unit: int = 1) -> int:
        return n_real + sum(self.synthetic_size(t, default) * unit for t in range(1, generations + 1))

    def next_training_set(self, real: Batch, synthetic: Batch, history: list[Batch], rng: torch.Generator) -> Batch:
        pool = Batch.cat([real, *history, synthetic])
        return pool.subsample(len(synthetic), rng)


def build_policy(cfg: dict) -> Policy:
    """The policy of ``cfg["policy"]`` (its YAML names the class by ``_target_``)."""
    return build(cfg["policy"], "policy", drop=())
