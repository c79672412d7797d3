"""The policies: training sets, closed forms, sizes and their own key checks."""
import re

import pytest
import torch

from collapselab.batch import Batch
from collapselab.errors import ConfigError
from collapselab.interfaces import Policy as PolicyProtocol
from collapselab.policies import Policy, VerifyPolicy, build_policy

from .conftest import compose_cfg, options


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", options("policy"))
def test_each_policy_builds_the_training_set(name):
    policy = build_policy(compose_cfg([f"policy={name}"]))
    assert isinstance(policy, PolicyProtocol) and policy.name == name
    real, s1, s2 = (Batch(torch.full((1, k, 2), float(v)), torch.full((1, k), float(v))) for v, k in ((0, 3), (1, 2), (2, 2)))
    out = policy.next_training_set(real, s2, [s1] if policy.keeps_history else [], g())
    accumulates = name.endswith("accumulate")
    expected = ([0.0] * 3 + [1.0] * 2 if accumulates else []) + [2.0] * 2
    assert out.y[0].tolist() == expected and out.x.shape == (1, len(expected), 2)
    assert policy.filters == name.startswith("verify") and policy.keeps_history == accumulates


def test_policies_declare_their_closed_form_and_sizes():
    replace, verify, acc = (build_policy(compose_cfg([f"policy={n}"])) for n in ("replace", "verify", "accumulate"))
    assert replace.theory(verified=True) == "replace" and verify.theory(verified=True) == "verify"
    assert verify.theory(verified=False) == "replace"  # a filter without a verifier is unfiltered retraining
    assert acc.theory(verified=False) is None and Policy(name="base").theory(verified=False) == "replace"
    grown = VerifyPolicy(name="v", n_synthetic=7, growth=3)
    assert grown.theory(verified=True) is None and [grown.synthetic_size(t, 100) for t in (1, 2, 3)] == [7, 10, 13]
    assert acc.largest_training_set(10, 5, generations=3) == 25 and replace.largest_training_set(10, 5, 3) == 10


def test_a_new_policy_reports_no_closed_form_unless_it_declares_one():
    class Mine(Policy):
        closed_form = None
    assert Mine(name="mine").theory(verified=True) is None


@pytest.mark.parametrize("kwargs,message", [({"n_synthetic": 0}, "policy.n_synthetic=0"), ({"growth": -1}, "policy.growth=-1"),
                                            ({"max_candidates_factor": 0.5}, "policy.max_candidates_factor=0.5"),
                                            ({"name": ""}, "policy.name=''")])
def test_policy_keys_are_checked_by_the_policy(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        VerifyPolicy(**{"name": "verify", **kwargs})
