"""Verifiers: the centre verifier, the MNIST classifier, judge and discriminator, and the contract every verifier
is checked against when built."""
import math

import pytest
import torch
from torch import nn

from collapselab.errors import ConfigError
from collapselab.verifiers.base import apply_reliability
from collapselab.verifiers.linear import CenterVerifier
from collapselab.verifiers.mnist import ClassifierVerifier, DiscriminatorVerifier, JudgeVerifier


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images_believed(labels: list[int]) -> torch.Tensor:
    x = torch.zeros(len(labels), 1, 28, 28)
    for i, c in enumerate(labels):
        x[i, 0, 0, c] = 1.0
    return x


def test_centre_verifier_band_per_chain():
    v = CenterVerifier(torch.tensor([[0.0], [1.0]], dtype=torch.float64), radius=0.5, noise_std=1e-12)
    x = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    y = torch.tensor([0.4, 0.6, 1.2], dtype=torch.float64).expand(2, 1, 3)
    assert v(x, y, g()).tolist() == [[[True, False, False]], [[False, True, True]]]


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


# ----- the contract, and ranking in every study ------------------------------------------------------------------
class NoKeepFraction:
    """A plug-in verifier that forgot ``keep_fraction``."""

    def __init__(self, data) -> None:
        self.data = data

    def __call__(self, x, y, rng):
        return torch.ones_like(y, dtype=torch.bool)


class RanksWithoutScore:
    """A plug-in that asks to rank but has no score()."""

    keep_fraction = 0.5

    def __init__(self, data) -> None:
        self.data = data


@pytest.mark.parametrize("target, lacks", [("NoKeepFraction", "keep_fraction"), ("RanksWithoutScore", "score")])
def test_a_plugin_lacking_a_required_member_is_refused_when_built(target, lacks):
    from collapselab.loop import check_config

    from .conftest import compose_cfg

    cfg = compose_cfg(["generator=linear", "policy=verify", "device=cpu"])
    cfg["verifier"] = {"name": "plugin", "_target_": f"{__name__}.{target}"}
    with pytest.raises(ConfigError, match=lacks) as e:
        check_config(cfg)
    assert "\n" not in str(e.value)


def test_no_study_probes_a_part_with_getattr():
    """What a study reads from a part is written in interfaces.py and checked with isinstance."""
    from .conftest import ROOT

    probes = [f"{p.name}:{i}" for p in (ROOT / "src" / "collapselab" / "studies").glob("*.py")
              for i, line in enumerate(p.read_text().splitlines(), 1) if "getattr(" in line or "hasattr(" in line]
    assert not probes, probes


@pytest.mark.parametrize("generator", ["linear", "gaussian"])
def test_centre_oracles_rank_keep_a_share_and_softmax_differs_from_top(tmp_path, generator):
    from .conftest import run_cfg

    base = [f"generator={generator}", "verifier=oracle", "policy=verify", "verifier.keep_fraction=0.1",
            "generations=1", "replicates=20", "device=cpu"]
    top = run_cfg(base, tmp_path / "top")
    soft = run_cfg(base + ["verifier.selection=softmax", "verifier.temperature=100"], tmp_path / "soft")
    quota = top[1]["n_train"]
    assert top[1]["accept_rate"] == pytest.approx(0.1)  # the quota of 10x candidates
    assert soft[1]["n_train"] == quota
    # top keeps the candidates nearest the centre theta* = the truth: the error falls far below generation 0's;
    # a hot softmax is close to a uniform subsample, so it does not
    assert top[1]["param_error"] < 0.1 * top[0]["param_error"]
    assert soft[1]["param_error"] > 0.5 * soft[0]["param_error"]


def test_centre_score_is_the_quadratic_reward_of_the_band():
    v = CenterVerifier(torch.zeros(1, dtype=torch.float64), 0.0, 1.0, keep_fraction=0.5)
    x = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    y = torch.tensor([[[0.0, 1.0, -2.0]]], dtype=torch.float64)
    w = math.sqrt(2 / math.pi)  # r = 0: the half-width is sigma sqrt(2/pi)
    assert torch.allclose(v.score(x, y), -0.5 * (y / w) ** 2)


def test_a_selection_the_verifier_cannot_support_names_both():
    from collapselab.loop import check_config

    from .conftest import compose_cfg

    cfg = compose_cfg(["generator=linear", "verifier=oracle", "verifier.keep_fraction=0.2", "verifier.selection=drs",
                       "device=cpu"])
    with pytest.raises(ConfigError, match="verifier.selection=drs.*verifier=oracle|verifier=oracle.*drs"):
        check_config(cfg)
    cfg = compose_cfg(["generator=linear", "verifier=noisy_oracle", "verifier.keep_fraction=0.2",
                       "verifier.reliability=0.5", "device=cpu"])
    with pytest.raises(ConfigError, match="reliability"):
        check_config(cfg)


def test_an_unfiltered_policy_runs_no_verifier_in_any_study(tmp_path):
    """One rule: replace / accumulate do not run the verifier; accept_rate is null (the linear study used to report
    what the verifier would have kept)."""
    from .conftest import run_cfg

    for gen in ("linear", "gaussian"):
        rows = run_cfg([f"generator={gen}", "verifier=oracle", "policy=replace", "generations=1", "replicates=5",
                        "device=cpu"], tmp_path / gen)
        assert rows[1]["accept_rate"] is None


def test_tilt_needs_a_score_with_a_known_maximum(fake_root):
    """selection=tilt draws coins with p = exp((score - score_max) / T): the MNIST verifiers' log-odds have no maximum,
    so it is refused at build time in one line; the centre verifiers declare score_max = 0."""
    from collapselab.loop import check_config

    from .conftest import compose_cfg
    mnist = ["data.source=fake", f"data.root={fake_root}", "progress=false", "device=cpu", "policy=verify"]
    for verifier in ("classifier", "oracle"):
        with pytest.raises(ConfigError, match="needs a score with a known maximum") as e:
            check_config(compose_cfg(mnist + [f"verifier={verifier}", "verifier.keep_fraction=null",
                                              "verifier.selection=tilt"]))
        assert "\n" not in str(e.value)
    assert CenterVerifier.score_max == 0.0
    _, _, study = check_config(compose_cfg(["generator=linear", "verifier.selection=tilt"]))
    assert study.verifier.selection == "tilt" and not study.theory_applies  # the band's closed form is not the tilt's
