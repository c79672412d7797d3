"""The MNIST study's evaluator: metrics in a self-trained network's feature space, and the pictures."""
from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import make_grid

from ..interfaces import LikelihoodModel
from ..checkpoint import cache_lock, load_torch, move_aside, save_torch
from ..data.mnist import IMAGE_SHAPE, N_CLASSES, MNIST, MNISTData, binarize, gray
from ..metrics.features import (class_entropy, density_coverage, feature_stats, fid, frechet_distance,
                                precision_recall)
from ..nets import EVALUATOR, NetCache, SmallCNN, predict, shipped_file
from ..plotting import save_image_grid
from ..rng import derive_seed
from ..sampling import Collected


def test_statistics(net: SmallCNN, mnist: MNIST, device: torch.device, features: bool = False) -> dict:
    """The evaluator's feature mean and covariance of the 10,000 test images, binarised (sample FID) and grayscale
    (decoder-mean FID), and the FID floors: 10,000 training images (a seed-0 draw) against them; with
    ``features`` also the binarised test features (precision / recall)."""
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(mnist.train_y), generator=g)[:len(mnist.test_y)]
    blob = {}
    for name, view in (("", binarize), ("_gray", gray)):
        _, f_test = predict(net, view(mnist.test_x).to(device))
        _, f_train = predict(net, view(mnist.train_x[idx]).to(device))
        mu, cov = feature_stats(f_test)
        blob.update({f"mu{name}": torch.from_numpy(mu), f"cov{name}": torch.from_numpy(cov),
                     f"fid_real_floor{name}": frechet_distance(*feature_stats(f_train), mu, cov)})
        if features and not name:
            blob["features"] = f_test.cpu()
    return blob


class MNISTEvaluator:
    """FID (samples and decoder means), precision/recall, density/coverage, label accuracy, class entropy, test NELBO.

    Built from its sizes alone; ``prepare`` (or the first call) fetches the evaluator network and the test
    set's feature statistics, computed once and cached under <data.root>/nets."""

    def __init__(self, nets: NetCache, data: MNISTData, device: torch.device, eval_samples: int,
                 pr_samples: int) -> None:
        self.nets, self.data, self.device = nets, data, device
        self.eval_samples, self.pr_samples = eval_samples, pr_samples
        self.net: SmallCNN | None = None

    def prepare(self) -> None:
        if self.net is not None:
            return
        mnist = self.data.mnist
        self.net = self.nets.get(EVALUATOR)[0]
        self.pr_samples = min(self.pr_samples, self.eval_samples, len(mnist.test_y))
        self.test_x, self.test_y = binarize(mnist.test_x).to(self.device), mnist.test_y.to(self.device)
        self.test_x_gray = gray(mnist.test_x).to(self.device)  # the authors' test NELBO is on the grayscale pixels
        blob = self._real_stats(mnist, self.data.cache_dir)
        self.test_stats = (blob["mu"].numpy(), blob["cov"].numpy())
        self.test_stats_gray = (blob["mu_gray"].numpy(), blob["cov_gray"].numpy())
        self.test_features = blob["features"].to(self.device)
        self.fid_floor, self.fid_mean_floor = float(blob["fid_real_floor"]), float(blob["fid_real_floor_gray"])

    def _real_stats(self, mnist: MNIST, cache_dir: Path) -> dict:
        """Evaluator statistics of the 10k test images, binarised (for sample FID) and grayscale (for the
        decoder-mean FID), and the FID floors of a real-vs-real split; cached. With the shipped evaluator its
        shipped statistics are the FID reference (the same on every machine); the test features it needs for
        precision / recall are computed here (seconds)."""
        shipped = shipped_file(f"{EVALUATOR.key(mnist.key)}-test-stats.pt")
        if shipped is not None:
            _, features = predict(self.net, binarize(mnist.test_x).to(self.device))
            return {**load_torch(shipped), "features": features.cpu()}
        path = cache_dir / f"{EVALUATOR.key(mnist.key)}-test-stats-v2.pt"
        with cache_lock(path):  # parallel first runs on one data root compute it once
            blob = self._load_stats(path, len(mnist.test_y))
            if blob is None:
                blob = self._compute_stats(mnist)
                save_torch(blob, path)
        return blob

    def _load_stats(self, path: Path, n_test: int) -> dict | None:
        """The cached statistics, checked (every key, the shapes the evaluator's features have); None when absent
        or unusable (then moved aside to be rebuilt)."""
        if not path.exists():
            return None
        try:
            blob = load_torch(path)
            d = self.net.head.in_features
            shapes = {"mu": (d,), "cov": (d, d), "mu_gray": (d,), "cov_gray": (d, d), "features": (n_test, d)}
            for k, shape in shapes.items():
                if not isinstance(blob, dict) or not torch.is_tensor(blob.get(k)) or tuple(blob[k].shape) != shape:
                    raise ValueError(f"{k} is missing or not a tensor of shape {shape}")
            for k in ("fid_real_floor", "fid_real_floor_gray"):
                float(blob[k])
            return blob
        except Exception as e:  # noqa: BLE001 - garbage, truncated, or another version's file
            return move_aside(path, e, "computing the test statistics again")

    def _compute_stats(self, mnist: MNIST) -> dict:
        return test_statistics(self.net, mnist, self.device, features=True)

    @torch.no_grad()
    def __call__(self, model, rng: torch.Generator) -> dict[str, float | None]:
        """The metrics of one generator. ``test_nelbo`` and ``test_nelbo_gray`` need ``model.batch_nelbo`` and
        ``fid_mean`` needs ``model.decode_mean`` (null for generators without a likelihood or a mean image).
        ``test_nelbo_gray`` (the authors' definition: the grayscale test images in, BCE against their grayscale
        pixels plus KL, one z) draws its noise after every other metric, so adding it changed none of them."""
        self.prepare()
        conditional = model.conditional  # an ImageGenerator (checked when built)
        gen = model.sample(self.eval_samples, rng)
        probs, feats = predict(self.net, gen.x)
        pred = probs.argmax(1)
        prec, rec = precision_recall(self.test_features[: self.pr_samples], feats[: self.pr_samples], k=3)
        dens, cov = density_coverage(self.test_features[: self.pr_samples], feats[: self.pr_samples], k=5)
        likelihood = isinstance(model, LikelihoodModel)
        nelbo = model.batch_nelbo if likelihood else None
        mean = model.decode_mean if likelihood else None
        row = {
            "fid": fid(feats, self.test_stats),
            "precision": prec,
            "recall": rec,
            "density": dens,
            "coverage": cov,
            "label_accuracy": float((pred == gen.y).float().mean()) if conditional else None,
            "class_entropy": class_entropy(pred),
            "test_nelbo": float(nelbo(self.test_x, self.test_y, rng).mean()) if nelbo else None,
            "test_nelbo_gray": None,  # beside test_nelbo in the row; computed last (below)
            # the paper's convention: decoder mean images against the grayscale test images
            "fid_mean": fid(predict(self.net, mean(gen.y, rng))[1], self.test_stats_gray) if mean else None,
        }
        if nelbo:
            row["test_nelbo_gray"] = float(nelbo(self.test_x_gray, self.test_y, rng).mean())
        return row


def save_samples(path: Path, model, seed: int, generation: int, col: Collected | None, verified: bool, tb,
                 device: torch.device) -> None:
    """samples.png: a row per class; verdicts.png: accepted (left) beside rejected (right) per class."""
    g = torch.Generator(device=device).manual_seed(derive_seed(seed, generation, "eval") ^ 1)
    y = torch.arange(N_CLASSES, device=device).repeat_interleave(10)
    grid = make_grid(model.decode(y, g).cpu(), nrow=10, padding=2, pad_value=0.5)
    save_image_grid(grid, path)
    tb.log_image("samples", grid, generation)
    if col is None or not verified or col.first_mask is None:
        return
    rows, per_side = [], 8
    blank = torch.full(IMAGE_SHAPE, 0.5)
    first_y, mask = col.first_y, col.first_mask.to(col.first_y.device)

    def pad(t: torch.Tensor) -> torch.Tensor:
        return torch.cat([t, blank.expand(per_side - len(t), *IMAGE_SHAPE)]) if len(t) < per_side else t

    def first(keep: torch.Tensor) -> torch.Tensor:
        """The first per_side candidates where ``keep``, chosen on the device: only they are copied to the host."""
        idx = torch.nonzero(keep).squeeze(1)[:per_side]
        return col.first_x[idx.to(col.first_x.device)].cpu()

    for c in range(N_CLASSES):
        in_c = first_y == c
        rows.append(torch.cat([pad(first(in_c & mask)), blank.unsqueeze(0), pad(first(in_c & ~mask))]))
    vgrid = make_grid(torch.cat(rows), nrow=2 * per_side + 1, padding=2, pad_value=0.5)
    save_image_grid(vgrid, path.parent / "verdicts.png")
    tb.log_image("verdicts", vgrid, generation)
