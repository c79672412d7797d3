"""collect: draw candidates until every group has its quota (hand-made proposers); select: keep a share of a
scored pool (top, softmax, drs)."""
import math

import pytest
import torch

from collapselab.errors import ConfigError, RunError
from collapselab.sampling import collect, pool_size, rank_select, select
from collapselab.verifiers.base import check_selection


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def counter_proposer():
    """Candidates y = 0, 1, 2, ... in draw order, per chain and group: x is the index as well."""
    state = {"next": 0}

    def propose(m, rng):
        y = torch.arange(state["next"], state["next"] + m, dtype=torch.float64).expand(2, 3, m).clone()
        state["next"] += m
        return y.unsqueeze(-1), y
    return propose


def test_collect_keeps_the_first_accepted_in_draw_order():
    quota = torch.tensor([[2, 1, 3], [3, 2, 1]])  # every chain has the same total (Collected is [R, K])
    col = collect(counter_proposer(), lambda x, y, r: (y % 2 == 0), quota, g())
    assert col.y.shape == (2, 6)
    assert col.y[0].tolist() == [0, 2, 0, 0, 2, 4]  # group 0: two evens, group 1: one, group 2: three
    assert col.y[1].tolist() == [0, 2, 4, 0, 2, 0] and (col.accepted <= col.proposed).all()
    assert torch.equal(col.x.squeeze(-1), col.y)


def test_collect_without_a_verifier_accepts_everything_and_counts():
    col = collect(counter_proposer(), None, torch.full((2, 3), 4), g())
    assert col.y[0, :4].tolist() == [0, 1, 2, 3]
    assert float(col.accept_rate[0]) == 1.0


def test_collect_gives_up_with_the_rate_and_the_hint():
    with pytest.raises(RunError, match=r"acceptance rate 0\.0000.*widen it"):
        collect(counter_proposer(), lambda x, y, r: y < 0, torch.full((2, 3), 2), g(), max_factor=5, hint="widen it")


# ----- select: one implementation of top / softmax / drs for every ranking verifier ------------------------------
def test_softmax_at_temperature_zero_is_top_and_keeps_the_quota():
    scores = torch.randn(3, 50, generator=g(1))
    quota = torch.tensor([5, 10, 0])
    top = rank_select(scores, quota)
    assert torch.equal(select(scores, quota, "softmax", 0.0, g(2)), top)
    assert torch.equal(select(scores, quota, "softmax", 1e-9, g(2)), top)  # a vanishing temperature: the top
    soft = select(scores, quota, "softmax", 1.0, g(2))
    assert soft.sum(1).tolist() == [5, 10, 0] and not torch.equal(soft, top)
    assert torch.equal(soft, select(scores, quota, "softmax", 1.0, g(2)))  # seeded by the verify stream


def test_softmax_keeps_in_proportion_to_exp_score_over_temperature():
    """One pick from two candidates with scores 0 and log 3: the second is kept 3/4 of the time (Luce's rule);
    at temperature 2 it is sqrt(3) / (1 + sqrt(3))."""
    scores = torch.tensor([[0.0, float(torch.log(torch.tensor(3.0)))]]).expand(20000, 2)
    quota = torch.ones(20000, dtype=torch.long)
    for t, p in ((1.0, 0.75), (2.0, 3 ** 0.5 / (1 + 3 ** 0.5))):
        share = select(scores, quota, "softmax", t, g(3))[:, 1].double().mean()
        assert abs(float(share) - p) < 0.015, (t, share)


def test_a_large_temperature_keeps_more_diversity_than_top():
    """Two modes, one scored higher: top keeps only the favoured mode; softmax at a large temperature keeps both
    in about their pool shares (the recall that prototype collapse loses)."""
    mode = torch.arange(1000) % 2  # candidates alternate between mode 0 and mode 1
    scores = (mode.double() * 2.0 + 0.1 * torch.randn(1000, generator=g(4), dtype=torch.float64)).view(1, -1)
    quota = torch.tensor([100])
    top = select(scores, quota, "top")
    warm = select(scores, quota, "softmax", 100.0, g(5))
    assert mode[top[0]].float().mean() == 1.0
    assert 0.35 < float(mode[warm[0]].float().mean()) < 0.65


def test_drs_is_a_density_ratio_draw_and_needs_a_discriminator():
    logits = torch.tensor([[0.0, float(torch.log(torch.tensor(3.0)))]]).expand(20000, 2)
    share = select(logits, torch.ones(20000, dtype=torch.long), "drs", 123.0, g(6))[:, 1].double().mean()
    assert abs(float(share) - 0.75) < 0.015  # D/(1-D) = e^logit: 3 to 1, whatever the temperature key
    assert check_selection("drs", 1.0, density_ratio=True) == ("drs", 1.0)
    with pytest.raises(ConfigError, match="verifier.selection=drs accepts in proportion to D/"):
        check_selection("drs", 1.0)
    with pytest.raises(ConfigError, match="verifier.selection='best' is invalid: choose one of top, softmax, drs"):
        check_selection("best", 1.0)
    with pytest.raises(ConfigError, match="verifier.temperature=-1"):
        check_selection("softmax", -1)


def test_rank_select_and_pool_size():
    s = torch.tensor([[0.1, 0.9, 0.5, 0.7], [4.0, 3.0, 2.0, 1.0]])
    assert rank_select(s, torch.tensor([2, 1])).tolist() == [[False, True, False, True], [True, False, False, False]]
    assert pool_size(200, 0.1) == 2000 and pool_size(200, 1.0) == 200 and pool_size(7, 0.3) == 24


def test_tilt_verdicts_give_exact_samples_of_the_tilted_law():
    """selection=tilt on the centre's reward: y ~ N(0, 1) accepted with probability exp(-(y - c)^2 / (2 T w^2)) keeps
    N(kappa * 0 + (1 - kappa) c, kappa), kappa = T w^2 / (T w^2 + 1), at rate sqrt(kappa) exp(-c^2 / (2 (1 + T w^2)))."""
    from collapselab.sampling import tilt_verdicts
    from collapselab.theory import SQRT_2_OVER_PI, tilt_factor
    from collapselab.verifiers.linear import CenterVerifier

    c, r, T = 0.5, 0.1, 2.0
    v = CenterVerifier(torch.tensor([c], dtype=torch.float64), r, 1.0, selection="tilt", temperature=T)
    g = torch.Generator().manual_seed(0)
    y = torch.randn(1, 1, 400_000, generator=g, dtype=torch.float64)
    x = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    acc = tilt_verdicts(v, x, y, g)
    kept = y[acc]
    tau2 = T * (r + SQRT_2_OVER_PI) ** 2
    k = tilt_factor(tau2)
    n = len(kept)
    assert abs(float(kept.mean()) - (1 - k) * c) < 4 * (k / n) ** 0.5
    assert abs(float(kept.var()) - k) < 4 * k * (2 / n) ** 0.5
    rate = k ** 0.5 * math.exp(-c * c / (2 * (1 + tau2)))
    assert abs(n / y.numel() - rate) < 4 * (rate / y.numel()) ** 0.5
