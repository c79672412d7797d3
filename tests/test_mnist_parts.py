"""MNIST verifiers on hand-made inputs, feature metrics, ranking."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from collapselab.metrics.features import class_entropy, frechet_distance, precision_recall
from collapselab.verifiers.base import apply_reliability
from collapselab.sampling import pool_size, rank_select
from collapselab.verifiers.mnist import ClassifierVerifier, DiscriminatorVerifier, JudgeVerifier


class FixedNet(nn.Module):
    """A 'classifier' whose logits are the first 10 pixels of the image (so tests choose its beliefs)."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def features(self, x):
        return x.flatten(1)[:, :10] * 10.0

    def head(self, f):
        return f

    def forward(self, x):
        return self.head(self.features(x))


class FixedNets:
    """A net cache that holds one hand-made network for every spec."""

    def __init__(self, net=None):
        self.net = net or FixedNet()

    def get(self, spec):
        return self.net, 1.0


def images_believed(labels: list[int]) -> torch.Tensor:
    x = torch.zeros(len(labels), 1, 28, 28)
    for i, c in enumerate(labels):
        x[i, 0, 0, c] = 1.0
    return x


def test_classifier_threshold_on_the_conditioning_label():
    x = images_believed([3, 3, 7])
    y = torch.tensor([3, 5, 7])
    v = ClassifierVerifier(FixedNets(), None, conditional=True, threshold=0.9)
    assert v(x, y, torch.Generator()).tolist() == [True, False, True]
    # unconditional: max probability, whatever the label
    vu = ClassifierVerifier(FixedNets(), None, conditional=False, threshold=0.9)
    assert vu(x, y, torch.Generator()).tolist() == [True, True, True]
    flat = torch.zeros(1, 1, 28, 28)  # uniform beliefs: p = 0.1 < 0.9
    assert vu(flat, torch.tensor([0]), torch.Generator()).tolist() == [False]


def test_classifier_ranks_by_log_probability_without_ties():
    net = FixedNet()
    x = torch.zeros(3, 1, 28, 28)
    x[:, 0, 0, 2] = torch.tensor([3.0, 4.0, 5.0])  # logit margins 30, 40, 50 nats: p rounds to 1.0 in fp32
    y = torch.full((3,), 2)
    v = ClassifierVerifier(FixedNets(net), None, conditional=True, keep_fraction=0.5)
    s = v.score(x, y)
    assert torch.allclose(s, torch.tensor([30.0, 40.0, 50.0]) - math.log(9.0))  # p = 1.0 would tie all three
    assert v(x, y, torch.Generator()).all()
    fast = ClassifierVerifier(FixedNets(net), None, conditional=True, keep_fraction=0.5, bf16=True)
    assert fast.score(x, y).dtype == torch.float32 and fast.net is not net  # its own channels-last copy
    assert v.net is net and v.test_accuracy == 1.0


def test_judge_and_its_reliability():
    x = images_believed([1] * 400)
    y = torch.tensor([1] * 200 + [2] * 200)
    j = JudgeVerifier(FixedNets(), conditional=True, threshold=0.5)
    own = j(x, y, torch.Generator())
    assert own[:200].all() and not own[200:].any()
    noisy = JudgeVerifier(FixedNets(), conditional=True, threshold=0.5, reliability=0.0)
    coin = noisy(x, y, torch.Generator().manual_seed(0))
    assert 0.4 < coin.float().mean() < 0.6  # same amount kept...
    assert 0.35 < coin[:200].float().mean() < 0.65 and 0.35 < coin[200:].float().mean() < 0.65  # ...no information


def test_apply_reliability_keeps_rate_per_chain():
    own = torch.zeros(2, 1000, dtype=torch.bool)
    own[0, :800] = True
    out = apply_reliability(own, 0.5, torch.Generator().manual_seed(1))
    assert out[0].float().mean() == pytest.approx(0.8, abs=0.05)
    assert not out[1].any()
    assert torch.equal(apply_reliability(own, 1.0, torch.Generator()), own)


def test_rank_select_and_pool_size():
    s = torch.tensor([[0.1, 0.9, 0.5, 0.7], [4.0, 3.0, 2.0, 1.0]])
    assert rank_select(s, torch.tensor([2, 1])).tolist() == [[False, True, False, True], [True, False, False, False]]
    assert pool_size(200, 0.1) == 2000 and pool_size(200, 1.0) == 200 and pool_size(7, 0.3) == 24


def test_discriminator_learns_and_ranks_by_logit():
    torch.manual_seed(0)  # the MLP's initialisation: independent of which tests ran before
    g = torch.Generator().manual_seed(0)
    real = (torch.rand(600, 1, 28, 28, generator=g) < 0.1).float()
    fake = (torch.rand(600, 1, 28, 28, generator=g) < 0.5).float()
    d = DiscriminatorVerifier(torch.device("cpu"), keep_fraction=0.5, epochs=3, batch_size=32, progress=False)
    labels = torch.zeros(600, dtype=torch.long)
    stats = d.fit((real, labels), (fake, labels), g)
    assert stats["discriminator_accuracy"] > 0.9
    scores = d.score(torch.cat([real[:10], fake[:10]]), torch.zeros(20, dtype=torch.long))
    assert scores[:10].min() > scores[10:].max()
    state = d.state_dict()
    d2 = DiscriminatorVerifier(torch.device("cpu"))
    d2.load_state_dict(state)
    assert torch.equal(d2.score(real[:5], labels[:5]), d.score(real[:5], labels[:5]))


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
