"""The MNIST study (PAPER.md section 5): real MNIST, a generator from conf/generator/, self-trained nets.

Parts with one job each: the data and real set (here), verifiers (``collapselab.verifiers.mnist``, built
from their YAML with ``study=self``), metrics and pictures (``mnist_eval``). Any generator that offers
``propose``/``sample``/``decode`` on labels 0..9 drops in; ``batch_nelbo`` / ``decode_mean`` add the
likelihood metrics.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..batch import Batch
from ..components import build
from ..config import check_int, get, require_int, require_label, require_number
from ..data.mnist import IMAGE_SHAPE, N_CLASSES, binarize, class_balanced_indices, load_mnist, pack_bits, unpack_bits
from ..device import resolve_bf16
from ..errors import ConfigError
from ..interfaces import Policy, load_state, state_of
from ..nets import EVALUATOR, JUDGE, NetSpec, get_net
from ..rng import make_rng
from ..sampling import Collected, collect
from ..verifiers.mnist import JudgeVerifier, label_scores, pool_size, rank_select
from .mnist_eval import MNISTEvaluator, save_samples

log = logging.getLogger(__name__)

HEADLINE = ("test_nelbo", "fid", "fid_mean", "precision", "recall", "label_accuracy", "class_entropy", "accept_rate",
            "verifier_agreement")
# The paper's regime: its first one-round gain is at ~8k retained images, 20k holds a gain for rounds 1-4
DEFAULT_N_SYNTHETIC = 20000
MAX_IMAGES = 1_000_000  # images a generation may ask for (a 10x candidate pool of them is ~31 GB of fp32)


class MNISTStudy:
    """Binary MNIST; metrics in the evaluator network's feature space; verifiers built with ``study=self``."""

    name = "vae"
    headline = HEADLINE

    def __init__(self, cfg: dict, device: torch.device, policy: Policy) -> None:
        self.name = get(cfg, "generator.name", "vae")
        if get(cfg, "data.name") != "mnist":
            raise ConfigError(f"data={get(cfg, 'data.name')} does not fit generator={self.name}: drop the data "
                              "override (the generator selects data=mnist)")
        if int(cfg["replicates"]) != 1:
            raise ConfigError(f"replicates={cfg['replicates']}: replicate chains are for generator=linear|gaussian; "
                              "for the VAE sweep seeds instead (python train.py -m seed=0,1,2)")
        self.device, self.seed, self.policy = device, int(cfg["seed"]), policy
        self.progress = bool(cfg.get("progress", True))
        self.gen_node = cfg["generator"]
        self.bf16 = resolve_bf16(self.gen_node.get("bf16", False), device)  # verifiers follow the generator
        probe = self.new_generator(0)  # checks the generator's keys before any data or network
        self.conditional = bool(getattr(probe, "conditional", True))
        n_real = require_int(cfg, "data.n_real", 10, "Generation 0 needs at least one image per class.")
        eval_samples = require_int(cfg, "data.eval_samples", 20, hi=MAX_IMAGES)
        pr_samples = require_int(cfg, "data.pr_samples", 4, hi=MAX_IMAGES)
        self.n_synthetic = check_int("policy.n_synthetic", policy.synthetic_size(1, DEFAULT_N_SYNTHETIC), 1,
                                     hi=MAX_IMAGES)
        if self.n_synthetic < N_CLASSES:
            raise ConfigError(f"policy.n_synthetic={self.n_synthetic} is too small: a class-balanced set needs at "
                              "least 10 images (one per class)")

        # data: loaded once, binarised once (pixel >= 128), kept in memory as tensors
        root = Path(require_label(cfg, "data.root")).expanduser()
        self.mnist = load_mnist(root, str(get(cfg, "data.source", "auto")))
        if n_real > len(self.mnist.train_y):
            raise ConfigError(f"data.n_real={n_real} exceeds the {len(self.mnist.train_y)} training images")
        idx = class_balanced_indices(self.mnist.train_y, n_real, make_rng(self.seed, 0, "data"))
        self.real = Batch(binarize(self.mnist.train_x[idx]).to(device), self.mnist.train_y[idx].to(device))
        self.cache_dir = root / "nets"  # networks the project trains itself
        self.classifier_acc = None

        # a verifier the policy does not use is neither built, trained nor run (replace / accumulate, or
        # keep_fraction=1, which keeps every candidate); a used one checks its keys before it trains
        vcfg = cfg["verifier"]
        self.verifier_name = vname = vcfg.get("name")
        unused = (f"policy={policy.name} does not filter" if not policy.filters
                  else "verifier.keep_fraction=1 keeps every candidate" if vcfg.get("keep_fraction") == 1.0 else None)
        self.verifier = None
        if vname != "none" and unused:
            log.info("verifier=%s is not used (%s): it is not trained or run, accept_rate is null", vname, unused)
        elif vname != "none":
            self.verifier = build(vcfg, "verifier", study=self)

        self.evaluator_net, self.evaluator_acc = self.trained_net(EVALUATOR)
        self.judge, self.judge_acc = self.trained_net(JUDGE)
        self.evaluate_metrics = MNISTEvaluator(self.evaluator_net, self.mnist, self.cache_dir, device,
                                               eval_samples, pr_samples)

    # ----- what verifiers may ask of the study ------------------------------------------------------
    def trained_net(self, spec: NetSpec):
        """(network, test accuracy) for ``spec``: from memory, the cache under <data.root>/nets, or trained."""
        return get_net(spec, self.mnist, self.cache_dir, self.device, self.progress)

    def check_train_size(self, train_size: int | None) -> int:
        """verifier.train_size checked against the data; null means every real training image."""
        n_data = len(self.mnist.train_y)
        if train_size is None:
            return n_data
        ts = require_int({"verifier": {"train_size": train_size}}, "verifier.train_size", 10,
                         f"It counts real training images (at most {n_data}).")
        if ts > n_data:
            raise ConfigError(f"verifier.train_size={ts} exceeds the {n_data} MNIST training images: "
                              f"use at most {n_data} (every real image)")
        return ts

    def oracle(self, threshold: float, reliability: float, **_unused) -> JudgeVerifier:
        """The judge network (a stronger classifier standing in for the truth); ``reliability`` adds coins."""
        v = {"verifier": {"threshold": threshold, "reliability": reliability}}
        return JudgeVerifier(self.trained_net(JUDGE)[0], self.conditional,
                             threshold=require_number(v, "verifier.threshold", 0.0, 1.0),
                             reliability=require_number(v, "verifier.reliability", 0.0, 1.0))

    # ----- the loop's interface -----------------------------------------------------------------
    def quota(self, generation: int) -> torch.Tensor:
        """Per-class counts [1, 10] of this generation's synthetic set (class balanced)."""
        n = self.policy.synthetic_size(generation, DEFAULT_N_SYNTHETIC)
        q = torch.full((1, N_CLASSES), n // N_CLASSES, dtype=torch.long, device=self.device)
        q[0, : n % N_CLASSES] += 1
        return q

    def new_generator(self, generation: int):
        return build(self.gen_node, "generator", device=self.device, progress=self.progress)

    def prepare_verifier(self, model, generation: int) -> None:
        """Train a verifier that learns real vs the current generator's samples (when it asks to)."""
        v = self.verifier
        if v is None or not getattr(v, "fits_on_synthetic", False) or not v.fit_due():
            return
        rng = make_rng(self.seed, generation, "verifier_fit", self.device)
        n = v.fit_size
        idx = class_balanced_indices(self.mnist.train_y, n, make_rng(self.seed, generation, "verifier_fit"))
        real = (binarize(self.mnist.train_x[idx]).to(self.device), self.mnist.train_y[idx].to(self.device))
        # fakes carry the real set's label histogram, so a conditional discriminator cannot tell them by label
        fake_y = real[1][torch.randperm(n, generator=rng, device=rng.device).to(self.device)]
        v.fit(real, (model.decode(fake_y, rng), fake_y), rng)

    def _flat_verify(self, x: torch.Tensor, y: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        R, G, m = y.shape
        return self.verifier(x.reshape(R * G * m, *IMAGE_SHAPE), y.reshape(-1), rng).view(R, G, m)

    def _rank(self, model, quota: torch.Tensor, rng: torch.Generator) -> Collected:
        """Draw quota / keep_fraction candidates per class and keep each class's top scores."""
        m = pool_size(int(quota.max()), self.verifier.keep_fraction)
        x, y = model.propose(m, rng)
        scores = self.verifier.score(x.reshape(-1, *IMAGE_SHAPE), y.reshape(-1)).view(N_CLASSES, m)
        sel = rank_select(scores, quota[0])
        return Collected(x=x[0][sel].unsqueeze(0), y=y[0][sel].unsqueeze(0), proposed=torch.tensor([N_CLASSES * m]),
                         accepted=sel.sum().view(1).cpu(), first_x=x[0].reshape(-1, *IMAGE_SHAPE),
                         first_y=y[0].reshape(-1), first_mask=sel.reshape(-1))

    def draw(self, model, generation: int, rng: torch.Generator,
             rng_verify: torch.Generator) -> tuple[Batch, Collected]:
        """This generation's synthetic set x [K, 1, 28, 28], y [K] and what the draw cost."""
        quota = self.quota(generation)
        v = self.verifier  # None when the policy does not filter (see __init__)
        if v is not None and v.keep_fraction is not None:
            col = self._rank(model, quota, rng)
        else:
            hint = "Lower verifier.threshold or use verifier.keep_fraction (rank instead of threshold)."
            col = collect(model.propose, self._flat_verify if v is not None else None, quota, rng,
                          max_factor=self.policy.max_candidates_factor, max_round_elements=200_000, hint=hint)
            if v is None:
                col.accepted, col.first_mask = None, None  # nothing was verified: no acceptance rate
        synthetic = Batch(col.x[0], col.y[0])
        agree = label_scores(self.judge, synthetic.x, synthetic.y, self.conditional) >= 0.5
        col.extra = {"verifier_agreement": float(agree.float().mean())}
        return synthetic, col

    def evaluate(self, model, generation: int, rng: torch.Generator) -> dict[str, float | None]:
        return self.evaluate_metrics(model, rng)

    def summary_extras(self) -> dict:
        ev = self.evaluate_metrics
        return {"fid_real_floor": ev.fid_floor, "fid_mean_real_floor": ev.fid_mean_floor,
                "evaluator_test_accuracy": self.evaluator_acc, "judge_test_accuracy": self.judge_acc,
                "classifier_test_accuracy": self.classifier_acc, "bf16": self.bf16}

    # ----- state and pictures ---------------------------------------------------------------------
    def verifier_state(self) -> dict | None:
        state = state_of(self.verifier)
        return None if state is None else {"net": state}

    def load_verifier_state(self, state: dict | None) -> None:
        load_state(self.verifier, None if state is None else state["net"])

    def pack_synthetic(self, batch: Batch) -> dict:
        """Binary images as bits (98 bytes an image) and uint8 labels."""
        return {"bits": pack_bits(batch.x), "y": batch.y.to(torch.uint8).cpu()}

    def unpack_synthetic(self, state: dict) -> Batch:
        return Batch(unpack_bits(state["bits"]).to(self.device), state["y"].long().to(self.device))

    def save_samples(self, path: Path, model, generation: int, col: Collected | None, tb) -> None:
        save_samples(path, model, self.seed, generation, col, self.verifier is not None, tb, self.device)
