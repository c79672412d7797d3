"""The written interfaces: what the loop and the studies need from a generator, verifier, policy and study.

The loop and the studies call these methods and read these attributes, never a concrete class, so a
researcher's own class plugs in by naming it as ``_target_`` in a YAML (see README, "Your own verifier,
generator or policy", and docs/extending.md). Shapes: ``R`` replicate chains (1 for MNIST), ``G`` quota groups (classes, singular
directions, or 1), ``m`` candidates per group, ``N`` samples, ``*feat`` one sample's shape.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from .batch import Batch


@runtime_checkable
class Generator(Protocol):
    """A model refitted every generation. Built by its study with call-site kwargs (device, data shapes)."""

    def fit(self, train: Batch, rng: torch.Generator) -> dict[str, float]:
        """Fit on ``train`` (x [*lead, N, *feat], y [*lead, N]); returns training statistics for the row."""

    def propose(self, m: int, rng: torch.Generator) -> tuple[Tensor, Tensor]:
        """m candidates per chain and group: x broadcastable to [R, G, m, *feat], y [R, G, m]."""

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain containers only (checkpoints load with ``weights_only=True``)."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@runtime_checkable
class GaussianModel(Generator, Protocol):
    """What the Gaussian study (and an exact density-ratio oracle) also reads: ``moments() -> (mu [R], var [R])``."""

    def moments(self) -> tuple[Tensor, Tensor]: ...


@runtime_checkable
class RegressionModel(Generator, Protocol):
    """What the linear study also reads: ``theta`` [R, d], the fitted coefficients of R chains."""

    theta: Tensor


@runtime_checkable
class ImageGenerator(Generator, Protocol):
    """What the MNIST study also calls: labelled images [N, 1, 28, 28] for labels 0..9.

    Images may be binary or continuous (a synthetic set is stored losslessly either way). Optional, for the
    likelihood metrics (null without them): ``batch_nelbo(x, y, rng) -> Tensor [N]`` (``test_nelbo``) and
    ``decode_mean(y, rng) -> Tensor [N, 1, 28, 28]`` (``fid_mean``).
    """

    conditional: bool  # False: labels carry no meaning (verifiers then score max_c p(c | x))

    def sample(self, n: int, rng: torch.Generator) -> Batch:
        """n class-balanced samples: x [n, 1, 28, 28], y [n] (labels 0..9 in turn)."""

    def decode(self, y: Tensor, rng: torch.Generator) -> Tensor:
        """One image per label y [N]: x [N, 1, 28, 28]."""


@runtime_checkable
class Verifier(Protocol):
    """Judges candidates. Built from its YAML kwargs plus the parts its signature names among those the
    study offers (``data``, ``device``; on MNIST also ``nets``, ``conditional_model``, ``progress``), and checked
    against this protocol when built.

    Two modes, told by ``keep_fraction``:
    - ``None``: per-sample verdicts (the verifier must also be a ``VerdictVerifier``); the draw goes on until
      every group has its quota of accepted candidates;
    - a float in (0, 1]: ranking (the verifier must also be a ``RankingVerifier``): quota / keep_fraction
      candidates are drawn per group and quota of each kept by ``selection`` (``collapselab.sampling.select``).
    The same code (``collapselab.sampling.draw``) does this for every study; the optional capabilities below are
    written protocols too, checked with ``isinstance``, never probed.
    """

    keep_fraction: float | None


@runtime_checkable
class VerdictVerifier(Protocol):
    """A verifier that judges each candidate: ``__call__(x, y, rng) -> bool`` shaped like y; coins from ``rng``."""

    keep_fraction: float | None

    def __call__(self, x: Tensor, y: Tensor, rng: torch.Generator) -> Tensor: ...


@runtime_checkable
class RankingVerifier(Protocol):
    """A verifier that scores: ``score(x, y) -> float`` shaped like y, higher is better. ``selection`` is ``top``,
    ``softmax`` (a Luce draw, p ~ exp(score / temperature)), ``drs`` (only where ``density_ratio`` is true: the
    score is log p_data / p_model, e.g. log D/(1-D) of a real-vs-synthetic discriminator) or, with
    ``keep_fraction=None``, ``tilt`` (only a ``BoundedScore``: per-candidate coins, p = exp((score - score_max) / T))."""

    keep_fraction: float | None
    selection: str
    temperature: float
    density_ratio: bool

    def score(self, x: Tensor, y: Tensor) -> Tensor: ...


@runtime_checkable
class LearningVerifier(Protocol):
    """A verifier trained each generation on ``fit_size`` real samples against as many of the current generator's:
    ``fit_due()`` says whether this generation refits, ``fit(real, fake, rng)`` trains (real, fake: (x, y)).
    ``fake_labels`` says which labels the fakes are drawn for: ``real`` (the real set's labels, shuffled) or
    ``balanced`` (an equal share of every class)."""

    fit_size: int
    fake_labels: str

    def fit_due(self) -> bool: ...

    def fit(self, real: tuple[Tensor, Tensor], fake: tuple[Tensor, Tensor], rng: torch.Generator) -> dict: ...


@runtime_checkable
class Prepared(Protocol):
    """A part with opening work (fetching or training a network), done once every check has passed."""

    def prepare(self) -> None: ...


@runtime_checkable
class Stateful(Protocol):
    """A part with state that must survive a resume (a verifier's network, a centre)."""

    def state_dict(self) -> dict | None: ...

    def load_state_dict(self, state: dict) -> None: ...


@runtime_checkable
class BoundedScore(Protocol):
    """A ranking verifier whose score never exceeds ``score_max``: what ``selection=tilt`` needs, to accept each
    candidate on its own coin with probability exp((score - score_max) / temperature) (exact tilted samples)."""

    score_max: float


@runtime_checkable
class ModelAware(Protocol):
    """A verifier that reads the current generator before each draw (``observe(model)``, called by the study's
    ``prepare_verifier``): an oracle that knows p_data / p_model exactly."""

    def observe(self, model: Generator) -> None: ...


@runtime_checkable
class KnowledgeCentre(Protocol):
    """A regression verifier centred on theta_c [d] or [R, d]: the linear study reports ``center_error`` against it."""

    center: Tensor


@runtime_checkable
class TheoryParameters(Protocol):
    """A toy-study verifier whose keeping a closed form can describe (docs/theory.md): ``theory_parameters()`` ->
    {"selection": "band" (verdicts by its interval), "tilt" (its reward's exact tilt), "ratio" (the exact
    p_data / p_model under drs) or None (no closed form for how it keeps), and the numbers the closed forms read:
    "bias" (||theta_c - theta*||, or None), "radius", "reliability", "temperature"}. Studies read a verifier's
    parameters only through this."""

    def theory_parameters(self) -> dict: ...




@runtime_checkable
class ReportsAccuracy(Protocol):
    """A verifier built on a fixed network with a measured test accuracy (``summary.json``:
    ``classifier_test_accuracy``; None until it is prepared)."""

    test_accuracy: float | None


@runtime_checkable
class MixedPrecision(Protocol):
    """A generator that reports whether it trains and samples under bf16 autocast (``summary.json``: ``bf16``)."""

    amp: bool


@runtime_checkable
class LikelihoodModel(Protocol):
    """An MNIST generator with a likelihood: ``batch_nelbo(x, y, rng) -> [N]`` (``test_nelbo``) and
    ``decode_mean(y, rng) -> [N, 1, 28, 28]`` (``fid_mean``); without them both metrics are null."""

    def batch_nelbo(self, x: Tensor, y: Tensor, rng: torch.Generator) -> Tensor: ...

    def decode_mean(self, y: Tensor, rng: torch.Generator) -> Tensor: ...


@runtime_checkable
class Policy(Protocol):
    """How a generation's training set is built (``collapselab.policies.Policy`` is the base class to extend).

    ``filters``: candidates are drawn through the verifier; ``keeps_history``: ``next_training_set`` gets
    every earlier synthetic set (and resume needs them on disk); ``uses_real``: every training set holds
    real data; ``fresh``: the ``real`` it is given is ``study.fresh_real(t, n_fresh)``, new real data each
    generation. ``theory(verified)`` names the closed form a study may report ("replace", "verify", "mix",
    "fresh") or None.
    """

    name: str
    filters: bool
    keeps_history: bool
    uses_real: bool
    fresh: bool
    n_fresh: int | None
    max_candidates_factor: float

    def synthetic_size(self, generation: int, default: int) -> int:
        """Synthetic samples generation ``generation`` asks for (``default``: the study's own size)."""

    def theory(self, verified: bool) -> str | None: ...

    def largest_training_set(self, n_real: int, default: int, generations: int, unit: int = 1) -> int: ...

    def next_training_set(self, real: Batch, synthetic: Batch, history: list[Batch], rng: torch.Generator) -> Batch:
        """real x [*lead, n, *feat]; synthetic this generation's set; history earlier sets; rng its own stream."""


@runtime_checkable
class FreshData(Protocol):
    """A study that can give real data never used before: ``fresh_real(generation, n) -> Batch`` (n None: data.n_real),
    the same for the same (seed, generation); what a policy with ``fresh`` needs (others refuse such a policy)."""

    def fresh_real(self, generation: int, n: int | None) -> Batch: ...


@runtime_checkable
class Study(Protocol):
    """Which data, candidate source and metrics a generator brings, wired for the loop. Built as
    ``<cfg.study>(cfg, device, policy)``: it checks every config value it reads and builds its parts (data,
    evaluator, the verifier with the parts it offers) without writing or training anything. It may also be
    ``Prepared`` (opening work once the checks have passed) and ``FreshData``. The draw itself is
    ``collapselab.sampling.draw``, the same for every study: it reads ``quota``, ``verifier``, ``policy``,
    ``draw_layout`` and ``draw_metrics``."""

    headline: tuple[str, ...]  # metrics shown in the end-of-run table and the progress bar
    real: Batch  # generation 0's training set
    verifier: Verifier | None  # None: no verifier, or one the policy does not use
    policy: Policy
    draw_layout: Any  # collapselab.sampling.DrawLayout: how candidates meet the verifier

    def quota(self, generation: int) -> Tensor:
        """[R, G] synthetic samples per chain and group for this generation."""

    def draw_metrics(self, synthetic: Batch) -> dict | None:
        """Metrics of the drawn set merged into the row (MNIST: verifier_agreement), or None."""

    def new_generator(self, generation: int) -> Generator: ...

    def prepare_verifier(self, model: Generator, generation: int) -> None:
        """Train the verifier for this generation when it learns from the current generator."""

    def evaluate(self, model: Generator, generation: int, rng: torch.Generator) -> dict[str, float | None]:
        """The study's metrics of one generation (None where a metric does not apply)."""

    def save_samples(self, path: Path, model: Generator, generation: int, col, tb) -> None: ...

    def summary_extras(self) -> dict: ...

    def verifier_state(self) -> dict | None: ...

    def load_verifier_state(self, state: dict | None) -> None: ...

    def pack_synthetic(self, batch: Batch) -> dict:
        """A synthetic set as plain tensors, lossless (resume of an accumulating run re-reads it)."""

    def unpack_synthetic(self, state: dict) -> Batch: ...


def state_of(component: object) -> dict | None:
    """``component.state_dict()`` when it is ``Stateful`` (verifiers may be stateless)."""
    return component.state_dict() if isinstance(component, Stateful) else None


def load_state(component: object, state: dict | None) -> None:
    """``component.load_state_dict(state)`` when it is ``Stateful`` and there is a state."""
    if state is not None and isinstance(component, Stateful):
        component.load_state_dict(state)
