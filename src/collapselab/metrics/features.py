"""Feature-space metrics on evaluator features (torch in, floats out)."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..data.mnist import N_CLASSES


def feature_stats(f: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(mean [D], covariance [D, D]) in float64 of features [N, D]."""
    a = f.double().cpu().numpy()
    return a.mean(0), np.cov(a, rowvar=False)


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2}), the square root via a symmetric eigenproblem."""
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # S1^{1/2}
    m = r1 @ s2 @ r1
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(ev, 0, None)).sum())
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def fid(f_gen: Tensor, real_stats: tuple[np.ndarray, np.ndarray]) -> float:
    """FID between generated features and precomputed real statistics."""
    mu, s = feature_stats(f_gen)
    return frechet_distance(mu, s, *real_stats)


def _kth_nn_radius(f: Tensor, k: int, chunk: int = 2048) -> Tensor:
    """Distance from each row to its k-th nearest other row [N]."""
    out = []
    for i in range(0, len(f), chunk):
        d = torch.cdist(f[i:i + chunk], f)
        out.append(d.topk(k + 1, dim=1, largest=False).values[:, k])  # column 0 is the point itself
    return torch.cat(out)


def _coverage(query: Tensor, ref: Tensor, radii: Tensor, chunk: int = 2048) -> float:
    """Share of query rows inside at least one ball (ref_i, radii_i)."""
    inside = 0
    for i in range(0, len(query), chunk):
        d = torch.cdist(query[i:i + chunk], ref)
        inside += int((d <= radii[None, :]).any(1).sum())
    return inside / max(len(query), 1)


def precision_recall(f_real: Tensor, f_gen: Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (k-NN manifolds, Kynkaanniemi et al. 2019)."""
    f_real, f_gen = f_real.float(), f_gen.float()
    r_real = _kth_nn_radius(f_real, k)
    r_gen = _kth_nn_radius(f_gen, k)
    return _coverage(f_gen, f_real, r_real), _coverage(f_real, f_gen, r_gen)


def density_coverage(f_real: Tensor, f_gen: Tensor, k: int = 5, chunk: int = 2048) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020) of ``f_gen`` [M, D] against ``f_real`` [N, D], on k-NN balls around
    the real points (radius: the distance to the k-th nearest other real point). Density: the mean number of real
    balls a sample falls in, over k (1 on average when samples are distributed like the real data; above 1 where
    they crowd the dense regions). Coverage: the share of real balls that hold at least one sample (how much of the
    real data the samples reach). Strict inequalities, as the authors' reference code (the ``prdc`` package)."""
    f_real, f_gen = f_real.float(), f_gen.float()
    radii = _kth_nn_radius(f_real, k)
    inside = 0
    for i in range(0, len(f_gen), chunk):  # density: every (sample, real ball) pair with the sample inside
        inside += int((torch.cdist(f_gen[i:i + chunk], f_real) < radii[None, :]).sum())
    covered = 0
    for i in range(0, len(f_real), chunk):  # coverage: real balls whose nearest sample is inside
        covered += int((torch.cdist(f_real[i:i + chunk], f_gen).min(1).values < radii[i:i + chunk]).sum())
    return inside / (k * max(len(f_gen), 1)), covered / max(len(f_real), 1)


def class_entropy(pred: Tensor, n_classes: int = N_CLASSES) -> float:
    """Entropy (nats) of the predicted-class histogram; ln 10 = 2.303 is uniform."""
    p = torch.bincount(pred.cpu(), minlength=n_classes).double()
    p = p / p.sum()
    nz = p[p > 0]
    return float(-(nz * nz.log()).sum())


