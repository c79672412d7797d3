"""The policies: training sets, closed forms, sizes and their own key checks."""
import re

import pytest
import torch

from collapselab.batch import Batch
from collapselab.errors import ConfigError
from collapselab.interfaces import Policy as PolicyProtocol
from collapselab.loop import check_config
from collapselab.policies import MixPolicy, Policy, VerifyPolicy, build_policy

from .conftest import compose_cfg, options


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_every_policy_option_builds_and_names_itself():
    for name in options("policy"):
        policy = build_policy(compose_cfg([f"policy={name}"]))
        assert isinstance(policy, PolicyProtocol) and policy.name == name


@pytest.mark.parametrize("name", ["replace", "verify", "accumulate", "verify_accumulate"])
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
    assert acc.theory(verified=False) == "accumulate" and Policy(name="base").theory(verified=False) is None
    verify_acc = build_policy(compose_cfg(["policy=verify_accumulate"]))
    assert verify_acc.theory(verified=True) == "verify_accumulate" and verify_acc.theory(verified=False) == "accumulate"
    sub = build_policy(compose_cfg(["policy=accumulate_subsample"]))
    assert sub.theory(verified=False) == "accumulate_subsample"
    assert build_policy(compose_cfg(["policy=accumulate_subsample", "policy.filter=true"])).theory(verified=True) is None
    grown = VerifyPolicy(name="v", n_synthetic=7, growth=3)
    assert grown.theory(verified=True) is None and [grown.synthetic_size(t, 100) for t in (1, 2, 3)] == [7, 10, 13]
    assert acc.largest_training_set(10, 5, generations=3) == 25 and replace.largest_training_set(10, 5, 3) == 10


def test_a_new_policy_reports_no_closed_form_unless_it_declares_one():
    class Mine(Policy):  # declares nothing: no study may report another policy's theory for it
        pass

    class Declared(Policy):
        closed_form = "mix"
    assert Mine(name="mine").theory(verified=True) is None and Mine(name="mine").theory(verified=False) is None
    assert Declared(name="d").theory(verified=False) == "mix"


@pytest.mark.parametrize("kwargs,message", [({"n_synthetic": 0}, "policy.n_synthetic=0"), ({"growth": -1}, "policy.growth=-1"),
                                            ({"max_candidates_factor": 0.5}, "policy.max_candidates_factor=0.5"),
                                            ({"name": ""}, "policy.name=''")])
def test_policy_keys_are_checked_by_the_policy(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        VerifyPolicy(**{"name": "verify", **kwargs})


# ----- mix, fresh, accumulate_subsample ----------------------------------------------------------------------
def chains(values: list[list[float]]) -> Batch:
    y = torch.tensor(values, dtype=torch.float64)
    return Batch(y.unsqueeze(-1).clone(), y)


def test_mix_holds_its_real_share_repeating_or_subsampling_the_real_set():
    real = chains([[0.0, 1.0, 2.0, 3.0]] * 2)  # 2 chains, 4 real samples
    policy = MixPolicy(name="mix", real_fraction=0.75, n_synthetic=3)
    m = policy.synthetic_size(1, default=100)
    assert m == 3 and policy.real_count(m) == 9  # 12 in all, of which 9 real
    synthetic = chains([[9.0] * m] * 2)
    out = policy.next_training_set(real, synthetic, [], g(1))
    assert out.y.shape == (2, 12) and (out.y == 9.0).sum(1).tolist() == [3, 3]
    for row in out.y[:, :9]:  # every real sample twice (8), plus one more drawn uniformly
        counts = torch.bincount(row.long(), minlength=4)
        assert counts.sum() == 9 and counts.min() >= 2 and counts.max() == 3
    small = MixPolicy(name="mix", real_fraction=0.5, n_synthetic=2)  # 2 of the 4 real samples, a new draw each time
    draws = {tuple(small.next_training_set(real, chains([[9.0] * 2] * 2), [], g(s)).y[0, :2].tolist()) for s in range(20)}
    assert len(draws) > 3 and all(len(set(d)) == 2 for d in draws)
    again = small.next_training_set(real, chains([[9.0] * 2] * 2), [], g(3))
    assert torch.equal(again.y, small.next_training_set(real, chains([[9.0] * 2] * 2), [], g(3)).y)  # seeded


def test_mix_default_size_is_the_studys_and_its_keys_are_checked():
    mix = build_policy(compose_cfg(["policy=mix", "policy.real_fraction=0.1"]))
    assert mix.synthetic_size(1, 20000) == 18000 and mix.real_count(18000) == 2000 and mix.filters
    assert mix.theory(verified=True) is None and mix.theory(verified=False) == "mix"
    assert MixPolicy(name="mix", real_fraction=0.5, n_synthetic=7, growth=2).synthetic_size(3, 20000) == 11
    for bad, message in ((1.0, "policy.real_fraction=1 leaves no synthetic share"), (0.0, "policy.real_fraction=0.0")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            MixPolicy(name="mix", real_fraction=bad)


def test_fresh_trains_on_the_fresh_set_and_the_synthetic_set():
    fresh = build_policy(compose_cfg(["policy=fresh", "policy.n_fresh=3"]))
    assert fresh.fresh and fresh.n_fresh == 3 and fresh.theory(verified=False) == "fresh"
    out = fresh.next_training_set(chains([[5.0] * 3]), chains([[9.0] * 4]), [], g())
    assert out.y[0].tolist() == [5.0] * 3 + [9.0] * 4
    assert fresh.largest_training_set(100, 50, generations=4) == 53


def test_accumulate_subsample_trains_on_a_fixed_size_uniform_subsample_per_chain():
    policy = build_policy(compose_cfg(["policy=accumulate_subsample"]))
    assert policy.keeps_history and not policy.filters and policy.theory(verified=False) == "accumulate_subsample"
    real = chains([[0.0] * 4] * 300)
    history = [chains([[1.0] * 4] * 300), chains([[2.0] * 4] * 300)]
    out = policy.next_training_set(real, chains([[3.0] * 4] * 300), history, g())
    assert out.y.shape == (300, 4)  # as large as one generation's synthetic set
    share = torch.stack([(out.y == v).double().mean() for v in (0.0, 1.0, 2.0, 3.0)])
    assert torch.allclose(share, torch.full((4,), 0.25, dtype=torch.float64), atol=0.03)  # uniform over the pool
    assert len({tuple(r.tolist()) for r in out.y}) > 50  # each chain draws its own subsample
    assert policy.largest_training_set(10, 5, generations=3) == 25


@pytest.mark.parametrize("study", [["generator=linear", "replicates=3"], ["generator=gaussian", "replicates=3"]],
                         ids=["linear", "gaussian"])
def test_fresh_real_data_is_new_each_generation_and_seeded(study):
    _, _, built = check_config(compose_cfg(study + ["policy=fresh", "policy.n_fresh=7", "device=cpu"]))
    one, two = built.fresh_real(1, 7), built.fresh_real(2, 7)
    assert len(one) == 7 and one.y.shape[0] == 3 and one.x.shape[-1] == built.real.x.shape[-1]
    assert not torch.equal(one.y, two.y) and not torch.equal(one.y[:, :7], built.real.y[:, :7])
    assert torch.equal(one.y, built.fresh_real(1, 7).y)  # a resumed run draws the same fresh data
    assert len(built.fresh_real(1, None)) == len(built.real)  # n_fresh null: data.n_real


def test_fresh_mnist_images_are_never_used_twice(fake_root):
    cfg = compose_cfg(["debug=mnist", f"data.root={fake_root}", "policy=fresh", "policy.n_fresh=40", "device=cpu"])
    _, _, study = check_config(cfg)
    data = study.data
    used = [data.real_indices] + [data._fresh_order[(t - 1) * 40:t * 40] for t in (1, 2, 3)]
    allidx = torch.cat(used)
    assert len(torch.unique(allidx)) == len(allidx) == data.n_real + 120
    assert torch.equal(study.fresh_real(2, 40).x, study.fresh_real(2, 40).x)
    with pytest.raises(ConfigError, match=r"policy.n_fresh=400 over generations=100 needs"):
        check_config(compose_cfg(["debug=mnist", f"data.root={fake_root}", "policy=fresh", "policy.n_fresh=400",
                                  "generations=100"]))


class _StudyWithoutFreshData:
    """A study class that offers no fresh real data (it does not follow interfaces.FreshData)."""

    def __new__(cls, cfg, device, policy):
        from collapselab.studies.gaussian import GaussianStudy

        study = GaussianStudy(cfg, device, policy)
        return type("NoFresh", (), {k: getattr(study, k) for k in dir(study) if not k.startswith("__")
                                    and k != "fresh_real"})()


def test_a_study_without_fresh_data_refuses_policy_fresh():
    cfg = compose_cfg(["generator=gaussian", "policy=fresh", "device=cpu"])
    cfg["study"] = f"{__name__}._StudyWithoutFreshData"
    with pytest.raises(ConfigError, match="needs fresh real data each generation, which generator=gaussian's study"):
        check_config(cfg)
