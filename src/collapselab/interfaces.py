"""The written interfaces: what the loop and the studies need from a generator, verifier, policy and study.

The loop and the studies call these methods and read these attributes, never a concrete class, so a
researcher's own class plugs in by naming it as ``_target_`` in a YAML (see README, "Extending
collapselab"). Shapes: ``R`` replicate chains (1 for MNIST), ``G`` quota groups (classes, singular
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
    study offers (``data``, ``device``; on MNIST also ``nets``, ``conditional_model``, ``progress``).

    Two modes, told by ``keep_fraction``:
    - ``None``: per-sample verdicts, ``__call__(x, y, rng) -> bool`` shaped like y; the study draws until
      every group has its quota of accepted candidates;
    - a float in (0, 1]: ranking, ``score(x, y) -> float`` shaped like y; the study draws
      quota / keep_fraction candidates per group and keeps quota of each by the verifier's ``selection``
      (``top``, the default; ``softmax`` with ``temperature``; ``drs`` when ``density_ratio = True``, the
      score being log D/(1-D)): ``collapselab.sampling.select``, validated by ``sampling.check_selection``.
    Optional: ``fits_on_synthetic = True`` with ``fit_due() -> bool`` and ``fit(real, fake, rng)`` for a
    verifier trained on real vs the current generator's samples each generation (``fit_size`` real
    samples); ``prepare()`` for opening work (fetching a network); ``state_dict`` / ``load_state_dict`` for
    what must survive a resume.
    """

    keep_fraction: float | None

    def __call__(self, x: Tensor, y: Tensor, rng: torch.Generator) -> Tensor: ...


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
class Study(Protocol):
    """Which data, generator, evaluator and defaults a generator brings, wired for the loop. Built as
    ``<cfg.study>(cfg, device, policy)``: it checks every config value it reads and builds its parts (data,
    evaluator, the verifier with the parts it offers) without writing or training anything. An optional
    ``prepare()`` does the opening work (loading files, training networks) once the checks have passed; an
    optional ``fresh_real(generation, n) -> Batch`` (n None: data.n_real) gives real data never used before,
    the same for the same (seed, generation), for a policy with ``fresh`` (others refuse such a policy)."""

    headline: tuple[str, ...]  # metrics shown in the end-of-run table and the progress bar
    real: Batch  # generation 0's training set

    def new_generator(self, generation: int) -> Generator: ...

    def prepare_verifier(self, model: Generator, generation: int) -> None:
        """Train the verifier for this generation when it learns from the current generator."""

    def draw(self, model: Generator, generation: int, rng: torch.Generator, rng_verify: torch.Generator):
        """(synthetic Batch, sampling.Collected): candidates from ``rng``, verifier coins from ``rng_verify``."""

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
    """``component.state_dict()`` when it has one (verifiers may be stateless)."""
    fn = getattr(component, "state_dict", None)
    return fn() if callable(fn) else None


def load_state(component: object, state: dict | None) -> None:
    """``component.load_state_dict(state)`` when both exist."""
    fn = getattr(component, "load_state_dict", None)
    if state is not None and callable(fn):
        fn(state)
