"""Feature metrics: the Fréchet distance, precision and recall, density and coverage, class entropy."""

import numpy as np
import pytest
import torch

from collapselab.metrics.features import class_entropy, density_coverage, frechet_distance, precision_recall



def test_frechet_distance_closed_form():
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 2.0])
    s1, s2 = np.eye(3), 4 * np.eye(3)
    # ||mu||^2 + tr(I + 4I - 2*2I) = 9 + 3
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(12.0)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)


def test_precision_recall_on_hand_made_clouds():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(500, 2, generator=g)
    assert precision_recall(real, real.clone()) == (1.0, 1.0)
    far = real + 100.0
    assert precision_recall(real, far) == (0.0, 0.0)
    collapsed = real[:50] * 0.05  # all in the middle of the real cloud: precise, no recall
    p, r = precision_recall(real, collapsed)
    assert p > 0.9 and r < 0.2


def test_class_entropy():
    assert class_entropy(torch.arange(1000) % 10) == pytest.approx(np.log(10))
    assert class_entropy(torch.zeros(50, dtype=torch.long)) == 0.0


@pytest.mark.parametrize("shape", [(500, 400, 16), (300, 700, 8)])
def test_density_and_coverage_agree_with_the_reference_implementation(shape):
    """On fixed features, density and coverage (k = 5) equal the authors' reference code (the prdc package), for
    a sample set that crowds the real data's centre and one spread wider than it (chunks smaller than the sets)."""
    prdc = pytest.importorskip("prdc", reason="the reference implementation is a test extra: pip install -e '.[test]'")
    n, m, d = shape
    g = torch.Generator().manual_seed(n + m)
    real = torch.randn(n, d, generator=g)
    for scale in (0.5, 1.5):
        gen = scale * torch.randn(m, d, generator=g) + 0.2
        ref = prdc.compute_prdc(real.numpy(), gen.numpy(), nearest_k=5)
        dens, cov = density_coverage(real, gen, k=5, chunk=128)
        assert dens == pytest.approx(ref["density"], abs=1e-12) and cov == pytest.approx(ref["coverage"], abs=1e-12)
        assert (dens > 1) == (scale < 1)  # crowding the dense centre: density above 1; spread out: below


def test_density_and_coverage_on_hand_made_clouds():
    g = torch.Generator().manual_seed(1)
    real = torch.randn(200, 4, generator=g)
    assert density_coverage(real, real + 100.0) == (0.0, 0.0)  # far away: in no ball, covering none
    dens, cov = density_coverage(real, real[:1].repeat(200, 1))  # collapsed on one real point: every sample lies in
    balls = cov * 200                                              # the same few balls (its own and its neighbours')
    assert 1 <= balls <= 20 and dens == pytest.approx(balls / 5)
