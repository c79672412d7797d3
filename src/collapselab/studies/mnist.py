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
from ..config import check_int, get, require_int
from ..data.mnist import IMAGE_SHAPE, N_CLASSES, MNISTData
from ..errors import ConfigError
from ..interfaces import Policy, load_state, state_of
from ..nets import EVALUATOR, JUDGE, NetCache
from ..rng import make_rng
from ..sampling import Collected, collect, pool_size, select
from ..verifiers.mnist import label_scores
from .mnist_eval import MNISTEvaluator, save_samples

log = logging.getLogger(__name__)

HEADLINE = ("test_nelbo", "fid", "fid_mean", "precision", "recall", "label_accuracy", "class_entropy", "accept_rate",
            "verifier_agreement")
# The paper's regime: its first one-round gain is at ~8k retained images, 20k holds a gain for rounds 1-4
DEFAULT_N_SYNTHETIC = 20000
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
        self.conditional = bool(getattr(probe, "conditional", True))
        self.bf16 = getattr(probe, "amp", None)
        d = cfg["data"]
        self.data = MNISTData(d.get("root"), d.get("source", "auto"), d.get("n_real"), self.seed, device)
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

    def _build_verifier(self, node: dict):
        """The verifier with the parts it names; None when the policy does not use one (replace / accumulate,
        or keep_fraction=1, which keeps every candidate): such a verifier is neither built, trained nor run."""
        name = node.get("name")
        unused = (f"policy={self.policy.name} does not filter" if not self.policy.filters
                  else "verifier.keep_fraction=1 keeps every candidate" if node.get("keep_fraction") == 1.0 else None)
        if name == "none":
            return None
        if unused:
            log.info("verifier=%s is not used (%s): it is not trained or run, accept_rate is null", name, unused)
            return None
        offer = {"nets": self.nets, "data": self.data, "device": self.device, "conditional_model": self.conditional,
                 "progress": self.progress}
        return build(node, "verifier", offer=offer, context=f"generator={self.name}")

    @property
    def real(self) -> Batch:
        return self.data.real

    def prepare(self) -> None:
        """The opening work, after every check: load (or fetch) MNIST and fetch (or train) the networks."""
        getattr(self.verifier, "prepare", lambda: None)()
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
        return build(self.gen_node, "generator", device=self.device, progress=self.progress)

    def prepare_verifier(self, model, generation: int) -> None:
        """Train a verifier that learns real vs the current generator's samples (when it asks to)."""
        v = self.verifier
        if v is None or not getattr(v, "fits_on_synthetic", False) or not v.fit_due():
            return
        rng = make_rng(self.seed, generation, "verifier_fit", self.device)
        real = self.data.draw_real(v.fit_size, make_rng(self.seed, generation, "verifier_fit"))
        # fakes carry the real set's label histogram, so a conditional discriminator cannot tell them by label
        fake_y = real.y[torch.randperm(len(real), generator=rng, device=rng.device).to(self.device)]
        v.fit((real.x, real.y), (model.decode(fake_y, rng), fake_y), rng)

    def _rank(self, model, quota: torch.Tensor, rng: torch.Generator, rng_verify: torch.Generator) -> Collected:
        """Draw quota / keep_fraction candidates per class and keep quota of each by the verifier's selection
        (its top scores, or a softmax / D/(1-D) draw whose noise comes from the verify stream)."""
        v = self.verifier
        m = pool_size(int(quota.max()), v.keep_fraction)
        x, y = model.propose(m, rng)
        scores = v.score(x.reshape(-1, *IMAGE_SHAPE), y.reshape(-1)).view(N_CLASSES, m)
        sel = select(scores, quota[0], getattr(v, "selection", "top"), getattr(v, "temperature", 1.0), rng_verify)
        return Collected(x=x[0][sel].unsqueeze(0), y=y[0][sel].unsqueeze(0), proposed=torch.tensor([N_CLASSES * m]),
                         accepted=sel.sum().view(1).cpu(), first_x=x[0].reshape(-1, *IMAGE_SHAPE),
                         first_y=y[0].reshape(-1), first_mask=sel.reshape(-1))

    def draw(self, model, generation: int, rng: torch.Generator,
             rng_verify: torch.Generator) -> tuple[Batch, Collected]:
        """This generation's synthetic set x [K, 1, 28, 28], y [K] and what the draw cost. Candidates come
        from ``rng`` (the sample stream), a verifier's coin flips from ``rng_verify`` (the verify stream)."""
        quota = self.quota(generation)
        v = self.verifier  # None when the policy does not filter (see _build_verifier)
        if v is not None and v.keep_fraction is not None:
            col = self._rank(model, quota, rng, rng_verify)
        else:
            def verify(x: torch.Tensor, y: torch.Tensor, _rng: torch.Generator) -> torch.Tensor:
                R, G, m = y.shape
                return v(x.reshape(R * G * m, *IMAGE_SHAPE), y.reshape(-1), rng_verify).view(R, G, m)

            hint = "Lower verifier.threshold or use verifier.keep_fraction (rank instead of threshold)."
            col = collect(model.propose, verify if v is not None else None, quota, rng,
                          max_factor=self.policy.max_candidates_factor, max_round_elements=200_000, hint=hint)
            if v is None:
                col.accepted, col.first_mask = None, None  # nothing was verified: no acceptance rate
        synthetic = Batch(col.x[0], col.y[0])
        agree = label_scores(self.nets.get(JUDGE)[0], synthetic.x, synthetic.y, self.conditional) >= 0.5
        col.extra = {"verifier_agreement": float(agree.float().mean())}
        return synthetic, col

    def evaluate(self, model, generation: int, rng: torch.Generator) -> dict[str, float | None]:
        return self.evaluate_metrics(model, rng)

    def summary_extras(self) -> dict:
        ev = self.evaluate_metrics
        ev.prepare()
        return {"fid_real_floor": ev.fid_floor, "fid_mean_real_floor": ev.fid_mean_floor,
                "evaluator_test_accuracy": self.nets.get(EVALUATOR)[1], "judge_test_accuracy": self.nets.get(JUDGE)[1],
                "classifier_test_accuracy": getattr(self.verifier, "test_accuracy", None), "bf16": self.bf16}

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
