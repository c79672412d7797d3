"""The MNIST (C)VAE study (PAPER.md section 5): real MNIST, self-trained judge/evaluator/verifier nets."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torchvision.utils import make_grid

from ..batch import Batch
from ..checkpoint import load_torch, save_torch
from ..config import get, require_choice, require_int, require_number
from ..data.mnist import binarize, class_balanced_indices, gray, load_mnist, pack_bits, unpack_bits
from ..device import native_bf16, resolve_bf16
from ..errors import ConfigError
from ..generators.vae import VAEGenerator
from ..metrics.features import class_entropy, feature_stats, fid, frechet_distance, precision_recall
from ..nets import EVALUATOR, JUDGE, classifier_spec, get_net, predict
from ..plotting import save_image_grid
from ..policies import POLICIES
from ..rng import derive_seed, make_generator
from ..sampling import Collected, collect
from ..verifiers.mnist import (ClassifierVerifier, DiscriminatorVerifier, JudgeVerifier, label_scores, pool_size,
                               rank_select)

log = logging.getLogger(__name__)

VERIFIERS = ("none", "classifier", "oracle", "noisy_oracle", "discriminator")
HEADLINE = ("test_nelbo", "fid", "fid_mean", "precision", "recall", "label_accuracy", "class_entropy", "accept_rate",
            "verifier_agreement")
# The paper's regime: its first one-round gain is at ~8k retained images, 20k holds a gain for rounds 1-4
DEFAULT_N_SYNTHETIC = 20000


class MNISTTask:
    """Binary MNIST; generator = (C)VAE; metrics in the evaluator network's feature space."""

    name = "vae"
    headline = HEADLINE

    def __init__(self, cfg: dict, device: torch.device) -> None:
        if get(cfg, "data.name") != "mnist":
            raise ConfigError(f"data={get(cfg, 'data.name')} does not fit generator=vae: drop the data override "
                              "(generator=vae selects data=mnist)")
        vname = get(cfg, "verifier.name")
        if vname not in VERIFIERS:
            raise ConfigError(f"verifier={vname} does not fit generator=vae: choose verifier={'|'.join(VERIFIERS)}")
        if int(cfg["replicates"]) != 1:
            raise ConfigError(f"replicates={cfg['replicates']}: replicate chains are for generator=linear; "
                              "for the VAE sweep seeds instead (python train.py -m seed=0,1,2)")
        self.device, self.seed = device, int(cfg["seed"])
        self.progress = bool(cfg.get("progress", True))
        self.policy = POLICIES[cfg["policy"]["name"]]
        g = cfg["generator"]
        self.gen_kwargs = dict(
            arch=require_choice(cfg, "generator.arch", ("conv", "mlp")),
            conditional=bool(g["conditional"]),
            latent_dim=require_int(cfg, "generator.latent_dim", 1),
            epochs=require_int(cfg, "generator.epochs", 1),
            batch_size=require_int(cfg, "generator.batch_size", 1),
            lr=require_number(cfg, "generator.lr", 0.0, lo_open=True),
            patience=require_int(cfg, "generator.patience", 1),
            bf16=resolve_bf16(g.get("bf16", "auto"), device),
            sampling=require_choice(cfg, "generator.sampling", ("bernoulli", "threshold")),
            lr_schedule=require_choice(cfg, "generator.lr_schedule", ("constant", "onecycle")),
            min_steps=require_int(cfg, "generator.min_steps", 0),
        )
        self.conditional = self.gen_kwargs["conditional"]
        if g.get("bf16") is True and not native_bf16(device):
            log.warning("generator.bf16=true on a %s without native bf16: it runs emulated (slow); "
                        "generator.bf16=auto turns it on only where it is fast", device.type)
        n_real = require_int(cfg, "data.n_real", 10, "Generation 0 needs at least one image per class.")
        self.eval_samples = require_int(cfg, "data.eval_samples", 20)
        self.pr_samples = require_int(cfg, "data.pr_samples", 4)
        self.n_synthetic = int(cfg["policy"].get("n_synthetic") or DEFAULT_N_SYNTHETIC)
        if self.n_synthetic < 10:
            raise ConfigError(f"policy.n_synthetic={self.n_synthetic} is too small: a class-balanced set needs at "
                              "least 10 images (one per class)")
        self.growth = int(cfg["policy"].get("growth", 0))
        self.max_factor = float(cfg["policy"].get("max_candidates_factor", 200))

        # data: loaded once, binarised once (pixel >= 128), kept in memory as tensors
        root = Path(str(get(cfg, "data.root"))).expanduser()
        self.mnist = load_mnist(root, str(get(cfg, "data.source", "auto")))
        if n_real > len(self.mnist.train_y):
            raise ConfigError(f"data.n_real={n_real} exceeds the {len(self.mnist.train_y)} training images")
        self.pr_samples = min(self.pr_samples, self.eval_samples, len(self.mnist.test_y))
        idx = class_balanced_indices(self.mnist.train_y, n_real, make_generator(self.seed, 0, "data"))
        self.real = Batch(binarize(self.mnist.train_x[idx]).to(device), self.mnist.train_y[idx].to(device))
        self.test_x = binarize(self.mnist.test_x).to(device)
        self.test_y = self.mnist.test_y.to(device)

        # every verifier key is checked before any network is trained, so a bad value costs seconds
        self.verifier_name, self.verifier, self.classifier_acc = vname, None, None
        self.verifier_train_size, self.refit = None, "every_generation"
        vkw: dict = {}
        if vname == "classifier":
            self.verifier_train_size = self._train_size(cfg)
            vkw = dict(threshold=require_number(cfg, "verifier.threshold", 0.0, 1.0),
                       keep_fraction=self._keep_fraction(cfg))
        elif vname in ("oracle", "noisy_oracle"):
            vkw = dict(threshold=require_number(cfg, "verifier.threshold", 0.0, 1.0),
                       reliability=require_number(cfg, "verifier.reliability", 0.0, 1.0))
        elif vname == "discriminator":
            self.verifier_train_size = self._train_size(cfg)
            self.refit = require_choice(cfg, "verifier.refit", ("every_generation", "once"))
            kf = self._keep_fraction(cfg)
            if kf is None:
                raise ConfigError("verifier=discriminator ranks candidates: set verifier.keep_fraction in (0, 1]")
            cond = get(cfg, "verifier.conditional", False)
            if not isinstance(cond, bool):
                raise ConfigError(f"verifier.conditional={cond!r} is invalid: choose true or false")
            if cond and not self.conditional:
                raise ConfigError("verifier.conditional=true needs labelled samples: it does not fit "
                                  "generator.conditional=false (use verifier.conditional=false)")
            vkw = dict(keep_fraction=kf, epochs=require_int(cfg, "verifier.epochs", 1), conditional=cond)
        # a verifier the policy does not use is neither trained nor run (replace / accumulate, or
        # keep_fraction=1, which keeps every candidate)
        self.uses_verifier = vname != "none" and self.policy.filtered and vkw.get("keep_fraction") != 1.0
        if vname != "none" and not self.uses_verifier:
            why = (f"policy={self.policy.name} does not filter" if not self.policy.filtered
                   else "verifier.keep_fraction=1 keeps every candidate")
            log.info("verifier=%s is not used (%s): it is not trained or run, accept_rate is null", vname, why)

        # networks the project trains itself (cached under <root>/nets)
        self.cache_dir = root / "nets"
        self.evaluator, self.evaluator_acc = get_net(EVALUATOR, self.mnist, self.cache_dir, device, self.progress)
        self.judge, self.judge_acc = get_net(JUDGE, self.mnist, self.cache_dir, device, self.progress)
        self._real_stats()
        if not self.uses_verifier:
            return
        if vname == "classifier":
            net, self.classifier_acc = get_net(classifier_spec(self.verifier_train_size), self.mnist, self.cache_dir,
                                               device, self.progress)
            self.verifier = ClassifierVerifier(net, self.conditional, bf16=self.gen_kwargs["bf16"], **vkw)
        elif vname in ("oracle", "noisy_oracle"):
            self.verifier = JudgeVerifier(self.judge, self.conditional, **vkw)
        elif vname == "discriminator":
            self.verifier = DiscriminatorVerifier(device, bf16=self.gen_kwargs["bf16"], progress=self.progress, **vkw)

    def _train_size(self, cfg: dict) -> int:
        """verifier.train_size checked against the data; null means every real training image."""
        n_data = len(self.mnist.train_y)
        if get(cfg, "verifier.train_size") is None:
            return n_data
        ts = require_int(cfg, "verifier.train_size", 10, f"It counts real training images (at most {n_data}).")
        if ts > n_data:
            raise ConfigError(f"verifier.train_size={ts} exceeds the {n_data} MNIST training images: "
                              f"use at most {n_data} (every real image)")
        return ts

    @staticmethod
    def _keep_fraction(cfg: dict) -> float | None:
        if get(cfg, "verifier.keep_fraction") is None:
            return None
        return require_number(cfg, "verifier.keep_fraction", 0.0, 1.0, lo_open=True)

    # ----- real statistics, cached ------------------------------------------------------------
    def _real_stats(self) -> None:
        """Evaluator statistics of the 10k test images, binarised (for sample FID) and grayscale (for the
        decoder-mean FID), and the FID floors of a real-vs-real split; cached."""
        key = EVALUATOR.key(self.mnist.key)
        path = self.cache_dir / f"{key}-test-stats-v2.pt"
        if path.exists():
            blob = load_torch(path)
        else:
            g = torch.Generator().manual_seed(0)
            n = len(self.test_y)
            idx = torch.randperm(len(self.mnist.train_y), generator=g)[:n]
            blob = {}
            for name, view in (("", binarize), ("_gray", gray)):
                _, f_test = predict(self.evaluator, view(self.mnist.test_x).to(self.device))
                _, f_train = predict(self.evaluator, view(self.mnist.train_x[idx]).to(self.device))
                mu, cov = feature_stats(f_test)
                blob.update({f"mu{name}": torch.from_numpy(mu), f"cov{name}": torch.from_numpy(cov),
                             f"fid_real_floor{name}": frechet_distance(*feature_stats(f_train), mu, cov)})
                if not name:
                    blob["features"] = f_test.cpu()
            save_torch(blob, path)
        self.test_stats = (blob["mu"].numpy(), blob["cov"].numpy())
        self.test_stats_gray = (blob["mu_gray"].numpy(), blob["cov_gray"].numpy())
        self.test_features = blob["features"].to(self.device)
        self.fid_floor, self.fid_mean_floor = float(blob["fid_real_floor"]), float(blob["fid_real_floor_gray"])

    # ----- the loop's interface -----------------------------------------------------------------
    def quota(self, generation: int) -> torch.Tensor:
        """Per-class counts [1, 10] of this generation's synthetic set (class balanced)."""
        n = self.n_synthetic + self.growth * (generation - 1)
        q = torch.full((1, 10), n // 10, dtype=torch.long, device=self.device)
        q[0, : n % 10] += 1
        return q

    def new_generator(self, generation: int) -> VAEGenerator:
        return VAEGenerator(self.device, progress=self.progress, **self.gen_kwargs)

    def prepare_verifier(self, model: VAEGenerator, generation: int) -> None:
        """Train the discriminator on real vs the current generator's samples (every generation or once)."""
        if not isinstance(self.verifier, DiscriminatorVerifier):
            return
        if self.refit == "once" and self.verifier.net is not None:
            return
        rng = make_generator(self.seed, generation, "verifier_fit", self.device)
        n = self.verifier_train_size
        idx = class_balanced_indices(self.mnist.train_y, n, make_generator(self.seed, generation, "verifier_fit"))
        real = (binarize(self.mnist.train_x[idx]).to(self.device), self.mnist.train_y[idx].to(self.device))
        # fakes carry the real set's label histogram, so a conditional discriminator cannot tell them by label
        fake_y = real[1][torch.randperm(n, generator=rng, device=rng.device).to(self.device)]
        fake = (model.decode(fake_y, rng), fake_y)
        self.verifier.fit(real, fake, rng)

    def _flat_verify(self, x: torch.Tensor, y: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        R, G, m = y.shape
        return self.verifier(x.reshape(R * G * m, 1, 28, 28), y.reshape(-1), rng).view(R, G, m)

    def draw(self, model: VAEGenerator, generation: int, rng: torch.Generator,
             rng_verify: torch.Generator) -> tuple[Batch, Collected]:
        """This generation's synthetic set x [K, 1, 28, 28], y [K] and what the draw cost."""
        quota = self.quota(generation)
        v = self.verifier  # None when the policy does not filter (see __init__)
        if v is not None and v.keep_fraction is not None:
            # ranking: draw a pool of quota / keep_fraction per class, keep each class's top scores
            m = pool_size(int(quota.max()), v.keep_fraction)
            x, y = model.propose(m, rng)
            scores = v.score(x.reshape(-1, 1, 28, 28), y.reshape(-1)).view(10, m)
            sel = rank_select(scores, quota[0])
            col = Collected(x=x[0][sel].unsqueeze(0), y=y[0][sel].unsqueeze(0),
                            proposed=torch.tensor([10 * m]), accepted=sel.sum().view(1).cpu(),
                            first_x=x[0].reshape(-1, 1, 28, 28), first_y=y[0].reshape(-1), first_mask=sel.reshape(-1))
        else:
            hint = "Lower verifier.threshold or use verifier.keep_fraction (rank instead of threshold)."
            col = collect(model.propose, self._flat_verify if v is not None else None, quota, rng,
                          max_factor=self.max_factor, max_round_elements=200_000, hint=hint)
            if v is None:
                col.accepted, col.first_mask = None, None  # nothing was verified: no acceptance rate
        synthetic = Batch(col.x[0], col.y[0])
        agree = label_scores(self.judge, synthetic.x, synthetic.y, self.conditional) >= 0.5
        col.extra = {"verifier_agreement": float(agree.float().mean())}
        return synthetic, col

    @torch.no_grad()
    def evaluate(self, model: VAEGenerator, generation: int, rng: torch.Generator) -> dict[str, float | None]:
        gen = model.sample(self.eval_samples, rng)
        probs, feats = predict(self.evaluator, gen.x)
        pred = probs.argmax(1)
        prec, rec = precision_recall(self.test_features[: self.pr_samples], feats[: self.pr_samples], k=3)
        return {
            "fid": fid(feats, self.test_stats),
            "precision": prec,
            "recall": rec,
            "label_accuracy": float((pred == gen.y).float().mean()) if self.conditional else None,
            "class_entropy": class_entropy(pred),
            "test_nelbo": float(model.batch_nelbo(self.test_x, self.test_y, rng).mean()),
            # the paper's convention: decoder mean images against the grayscale test images
            "fid_mean": fid(predict(self.evaluator, model.decode_mean(gen.y, rng))[1], self.test_stats_gray),
        }

    def summary_extras(self) -> dict:
        return {"fid_real_floor": self.fid_floor, "fid_mean_real_floor": self.fid_mean_floor,
                "evaluator_test_accuracy": self.evaluator_acc, "judge_test_accuracy": self.judge_acc,
                "classifier_test_accuracy": self.classifier_acc, "bf16": self.gen_kwargs["bf16"]}

    # ----- state and pictures ---------------------------------------------------------------------
    def verifier_state(self) -> dict | None:
        if isinstance(self.verifier, DiscriminatorVerifier):
            return {"net": self.verifier.state_dict()}
        return None

    def load_verifier_state(self, state: dict | None) -> None:
        if state is not None and isinstance(self.verifier, DiscriminatorVerifier):
            self.verifier.load_state_dict(state["net"])

    def pack_synthetic(self, batch: Batch) -> dict:
        """Binary images as bits (98 bytes an image) and uint8 labels."""
        return {"bits": pack_bits(batch.x), "y": batch.y.to(torch.uint8).cpu()}

    def unpack_synthetic(self, state: dict) -> Batch:
        return Batch(unpack_bits(state["bits"]).to(self.device), state["y"].long().to(self.device))

    def save_samples(self, path: Path, model: VAEGenerator, generation: int, col: Collected | None, tb) -> None:
        """samples.png: a row per class; verdicts.png: accepted (left) beside rejected (right) per class."""
        g = torch.Generator(device=self.device).manual_seed(derive_seed(self.seed, generation, "eval") ^ 1)
        y = torch.arange(10, device=self.device).repeat_interleave(10)
        x = model.decode(y, g)
        grid = make_grid(x.cpu(), nrow=10, padding=2, pad_value=0.5)
        save_image_grid(grid, path)
        tb.log_image("samples", grid, generation)
        if col is None or self.verifier is None or col.first_mask is None:
            return
        rows = []
        blank = torch.full((1, 28, 28), 0.5)
        for c in range(10):
            in_c = col.first_y.cpu() == c
            acc = col.first_x.cpu()[in_c & col.first_mask.cpu()][:8]
            rej = col.first_x.cpu()[in_c & ~col.first_mask.cpu()][:8]
            pad = lambda t: torch.cat([t, blank.expand(8 - len(t), 1, 28, 28)]) if len(t) < 8 else t  # noqa: E731
            rows.append(torch.cat([pad(acc), blank.unsqueeze(0), pad(rej)]))
        vgrid = make_grid(torch.cat(rows), nrow=17, padding=2, pad_value=0.5)
        save_image_grid(vgrid, path.parent / "verdicts.png")
        tb.log_image("verdicts", vgrid, generation)
