"""Feature metrics: the Fréchet distance, precision and recall, class entropy."""

import numpy as np
import pytest
import torch

from collapselab.metrics.features import class_entropy, frechet_distance, precision_recall



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
