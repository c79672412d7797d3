"""collect: draw candidates until every group has its quota (hand-made proposers)."""
import pytest
import torch

from collapselab.errors import RunError
from collapselab.sampling import collect


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
