"""The MNIST study (paper section 5): real MNIST, a generator from conf/generator/, self-trained networks.

The study is small: it wires three parts built once, a data part (``data.mnist.MNISTData``: files, the
real set, storage), a net cache (``nets.NetCache``: the self-trained networks under <data.root>/nets,
locked) and an evaluator (``mnist_eval.MNISTEvaluator``), and offers them to the verifier, which
takes the ones its signature names. Building it reads the config only; ``prepare`` does the opening
work (loading, a first-run fetch, training networks). Any generator that offers ``propose`` / ``sample``
/ ``decode`` on labels 0..9 drops in; ``batch_nelbo`` / ``decode_mean`` add the likelihood metrics.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..batch import Batch
from ..components import build
from ..config import check_int, check_memory, get, require_int
from ..data.mnist import N_CLASSES, MNISTData
from ..errors import ConfigError
from ..interfaces import (ImageGenerator, LearningVerifier, MixedPrecision, Policy, Prepared, ReportsAccuracy,
                          load_state, state_of)
from ..nets import EVALUATOR, JUDGE, NetCache
from ..rng import make_rng
from ..sampling import Collected, DrawLayout, check_pool, verifier_in_use
from ..verifiers.base import build_verifier
from ..verifiers.mnist import label_scores
from .mnist_eval import MNISTEvaluator, save_samples

log = logging.getLogger(__name__)

HEADLINE = ("test_nelbo", "fid", "fid_mean", "precision", "recall", "label_accuracy", "class_entropy", "accept_rate",
            "verifier_agreement")
# The paper's regime: its first one-round gain is at ~8k retained images, 20k holds a gain for rounds 1-4
DEFAULT_N_SYNTHETIC = 20000
IMAGE_BYTES = 28 * 28 * 4  # one candidate image in fp32
MAX_IMAGES = 1_000_000  # images a generation may ask for (a 10x candidate pool of them is ~31 GB of fp32)


class MNISTStudy:
    """Binary MNIST; metrics in the evaluator network's feature space."""

    headline = HEADLINE

    def __init__(self, cfg: dict, device: torch.device, policy: Policy) -> None:
        self.name = get(cfg, "generator.name", "vae")
        if get(cfg, "data.name") != "mnist":
            raise ConfigError(f"data={get(cfg, 'data.name')} does not fit generator={self.name}: drop the data "
                              "override (the generator selects data=mnist)")
        if cfg.get("replicates") != 1:
            raise ConfigError(f"replicates={cfg.get('replicates')}: replicate chains are for generator=linear|gaussian; "
                              "for the VAE sweep seeds instead (python train.py -m seed=0,1,2)")
        self.device, self.seed, self.policy = device, int(cfg["seed"]), policy
        self.progress = bool(cfg.get("progress", True))
        self.gen_node = cfg["generator"]
        probe = self.new_generator(0)  # checks the generator's keys before anything else
        self.conditional = bool(probe.conditional)
        self.bf16 = probe.amp if isinstance(probe, MixedPrecision) else None
        d = cfg["data"]
        self.data = MNISTData(d.get("root"), d.get("source", "auto"), d.get("n_real"), self.seed, device,
                              d.get("real_pixels", "binary"))
        self.n_synthetic = check_int("policy.n_synthetic", policy.synthetic_size(1, DEFAULT_N_SYNTHETIC), 1,
                                     hi=MAX_IMAGES)
        if self.n_synthetic < N_CLASSES:
            raise ConfigError(f"policy.n_synthetic={self.n_synthetic} is too small: a class-balanced set needs at "
                              "least 10 images (one per class)")
        if policy.fresh:
            self.data.check_fresh(policy.n_fresh or self.data.n_real, int(cfg["generations"]))
        self.nets = NetCache(self.data, device, self.progress)
        self.evaluate_metrics = MNISTEvaluator(self.nets, self.data, device,
                                               require_int(cfg, "data.eval_samples", 20, hi=MAX_IMAGES),
                                               require_int(cfg, "data.pr_samples", 4, hi=MAX_IMAGES))
        self.verifier = self._build_verifier(cfg["verifier"])
        generations = int(cfg["generations"])
        largest = policy.synthetic_size(max(generations, 1), DEFAULT_N_SYNTHETIC)
        check_pool(self.verifier, policy.filters, largest, N_CLASSES, 1, IMAGE_BYTES + 8)
        check_memory(policy.largest_training_set(self.data.n_real, DEFAULT_N_SYNTHETIC, generations) * IMAGE_BYTES,
                     f"the largest training set (policy={policy.name}, {generations} generations)",
                     "Lower policy.n_synthetic or generations, or use a policy that does not accumulate.")
        self.draw_layout = DrawLayout(flat=True, keep_chains=False, round_elements=200_000, hint="Lower "
                                      "verifier.threshold or use verifier.keep_fraction (rank instead of threshold).")

    def _build_verifier(self, node: dict):
        """The verifier with the parts it names; None when the policy does not use it (replace / accumulate, or
        keep_fraction=1, which keeps every candidate): such a verifier is built (its keys checked) but neither
        trained nor run."""
        offer = {"nets": self.nets, "data": self.data, "device": self.device, "conditional_model": self.conditional,
                 "progress": self.progress}
        v = build_verifier(node, offer, f"generator={self.name}")
        if v is not None and not verifier_in_use(v, self.policy.filters):
            why = (f"policy={self.policy.name} does not filter" if not self.policy.filters
                   else "verifier.keep_fraction=1 keeps every candidate")
            log.info("verifier=%s is not used (%s): it is not trained or run, accept_rate is null", node.get("name"), why)
            return None
        return v

    @property
    def real(self) -> Batch:
        return self.data.real

    def prepare(self) -> None:
        """The opening work, after every check: load (or fetch) MNIST and fetch (or train) the networks."""
        if isinstance(self.verifier, Prepared):
            self.verifier.prepare()
        self.evaluate_metrics.prepare()
        self.nets.get(JUDGE)

    # ----- the loop's interface -----------------------------------------------------------------
    def quota(self, generation: int) -> torch.Tensor:
        """Per-class counts [1, 10] of this generation's synthetic set (class balanced)."""
        n = self.policy.synthetic_size(generation, DEFAULT_N_SYNTHETIC)
        q = torch.full((1, N_CLASSES), n // N_CLASSES, dtype=torch.long, device=self.device)
        q[0, : n % N_CLASSES] += 1
        return q

    def fresh_real(self, generation: int, n: int | None) -> Batch:
        """n (None: data.n_real) training images never used before, for generation ``generation``."""
        return self.data.fresh(generation, n or self.data.n_real)

    def new_generator(self, generation: int):
        return build(self.gen_node, "generator", device=self.device, progress=self.progress, protocol=ImageGenerator)

    def prepare_verifier(self, model, generation: int) -> None:
        """Train a verifier that learns real vs the current generator's samples (when it asks to)."""
        v = self.verifier
        if not isinstance(v, LearningVerifier) or not v.fit_due():
            return
        rng = make_rng(self.seed, generation, "verifier_fit", self.device)
        real = self.data.draw_real(v.fit_size, make_rng(self.seed, generation, "verifier_fit"))
        if v.fake_labels == "balanced":  # an equal share of every digit (the authors': 6,000 a digit against 60,000)
            fake_y = torch.arange(len(real), device=self.device) % N_CLASSES
        else:  # the real set's label histogram, so a conditional discriminator cannot tell them by label
            fake_y = real.y[torch.randperm(len(real), generator=rng, device=rng.device).to(self.device)]
        v.fit((real.x, real.y), (model.decode(fake_y, rng), fake_y), rng)

    def draw_metrics(self, synthetic: Batch) -> dict:
        """verifier_agreement: the share of the drawn set the judge network accepts."""
        agree = label_scores(self.nets.get(JUDGE)[0], synthetic.x, synthetic.y, self.conditional) >= 0.5
        return {"verifier_agreement": float(agree.float().mean())}

    def evaluate(self, model, generation: int, rng: torch.Generator) -> dict[str, float | None]:
        return self.evaluate_metrics(model, rng)

    def summary_extras(self) -> dict:
        ev = self.evaluate_metrics
        ev.prepare()
        return {"fid_real_floor": ev.fid_floor, "fid_mean_real_floor": ev.fid_mean_floor,
                "evaluator_test_accuracy": self.nets.get(EVALUATOR)[1], "judge_test_accuracy": self.nets.get(JUDGE)[1],
                "classifier_test_accuracy": self.verifier.test_accuracy if isinstance(self.verifier, ReportsAccuracy)
                else None, "bf16": self.bf16}

    # ----- state and pictures ---------------------------------------------------------------------
    def verifier_state(self) -> dict | None:
        state = state_of(self.verifier)
        return None if state is None else {"net": state}

    def load_verifier_state(self, state: dict | None) -> None:
        load_state(self.verifier, None if state is None else state["net"])

    def pack_synthetic(self, batch: Batch) -> dict:
        return self.data.pack(batch)

    def unpack_synthetic(self, state: dict) -> Batch:
        return self.data.unpack(state)

    def save_samples(self, path: Path, model, generation: int, col: Collected | None, tb) -> None:
        save_samples(path, model, self.seed, generation, col, self.verifier is not None, tb, self.device)
