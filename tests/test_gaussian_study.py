"""The Gaussian toy model: theory of the variance and mean under replace, bounded error under verify."""
from pathlib import Path

import pytest

from collapselab import theory
from collapselab.errors import ConfigError

from .conftest import filters, compose_cfg, n_train_after_one, options, read_rows, run_cfg, strip_wall

GAUSS = ["debug=gaussian"]  # conf/debug/gaussian.yaml


def within(row: dict, metric: str, k: float = 3.0) -> bool:
    return abs(row[metric] - row[f"theory_{metric}"]) <= k * row[f"{metric}_se"]


@pytest.mark.slow
@pytest.mark.parametrize("policy", options("policy"))
@pytest.mark.parametrize("verifier", options("verifier"))
def test_gaussian_compositions_run_one_generation(tmp_path: Path, verifier, policy):
    args = GAUSS + [f"verifier={verifier}", f"policy={policy}", "generations=1", "replicates=8"]
    try:
        rows = run_cfg(args, tmp_path)
    except ConfigError as e:  # a verifier of another study (the MNIST networks): one line naming both
        assert f"verifier={verifier} does not fit generator=gaussian" in str(e)
        return
    assert [r["generation"] for r in rows] == [0, 1]
    assert rows[1]["n_train"] == n_train_after_one(policy, 100, 100)
    assert (rows[1]["accept_rate"] is None) == (verifier == "none" or not filters(policy))
    assert rows[1]["variance"] > 0 and rows[1]["param_error"] > 0


def test_defaults_and_keys():
    cfg = compose_cfg(["generator=gaussian"])
    assert cfg["data"] == {"name": "gaussian", "n_real": 100, "mean": 0.0, "std": 1.0}
    assert cfg["verifier"]["_target_"] == "collapselab.verifiers.linear.oracle"  # the data names its ground truth
    assert cfg["generator"]["fit_variance"] is True and cfg["verifier"]["name"] == "oracle"


@pytest.mark.slow  # end-to-end runs (the fast suite keeps the formulas' by-hand checks)
def test_replace_follows_the_closed_forms(tmp_path):
    """E[var_t] = sigma^2 ((n-1)/n)^(t+1) and E[(mu_t - mu*)^2] = (sigma^2/n) sum_s ((n-1)/n)^s, within 3 SE."""
    rows = run_cfg(GAUSS + ["policy=replace", "verifier=none", "generations=50", "replicates=2000"], tmp_path)
    n = 100
    for t in (10, 25, 50):
        assert rows[t]["theory_variance"] == pytest.approx(((n - 1) / n) ** (t + 1))
        assert rows[t]["theory_param_error"] == pytest.approx(sum(((n - 1) / n) ** s for s in range(t + 1)) / n)
        assert within(rows[t], "variance") and within(rows[t], "param_error"), rows[t]
    assert rows[50]["variance"] < 0.7 and rows[50]["param_error"] > 30 * rows[0]["param_error"]  # collapse


def test_known_variance_replace_grows_linearly(tmp_path):
    rows = run_cfg(GAUSS + ["policy=replace", "verifier=none", "generator.fit_variance=false", "generations=20",
                            "replicates=2000", "data.std=2.0", "policy.n_synthetic=50"], tmp_path)
    assert rows[20]["variance"] == 4.0 and rows[20]["theory_param_error"] == pytest.approx(4 / 100 + 20 * 4 / 50)
    assert within(rows[20], "param_error")


@pytest.mark.slow  # end-to-end runs (the fast suite keeps the formulas' by-hand checks)
def test_verify_keeps_the_mean_bounded_and_truncates_the_variance(tmp_path):
    """Verified retraining: the mean's error stays near the real-data level, while a fixed interval cuts the
    fitted variance to the truncated-normal variance m2* in one round and then keeps shrinking it."""
    ver = run_cfg(GAUSS + ["policy=verify", "verifier=oracle", "generations=50", "replicates=400"], tmp_path / "v")
    rep = run_cfg(GAUSS + ["policy=replace", "verifier=none", "generations=50", "replicates=400"], tmp_path / "r")
    assert max(r["param_error"] for r in ver) < 3 * ver[0]["param_error"]
    assert ver[50]["param_error"] < 0.1 * rep[50]["param_error"]
    m2 = theory.contraction_factor(0.1, 1.0)
    assert ver[1]["variance"] == pytest.approx(m2 * ver[0]["variance"], rel=0.05)
    assert ver[50]["variance"] < 0.1 * rep[50]["variance"]


@pytest.mark.parametrize("verifier,bias", [("oracle", 0.0), ("noisy_oracle", 0.3)])
def test_known_variance_verify_matches_the_linear_formula(tmp_path, verifier, bias):
    """With sigma known, one verified round is the d = 1 case of the linear study (mu_1^2 = n)."""
    rows = run_cfg(GAUSS + ["policy=verify", f"verifier={verifier}", "generator.fit_variance=false",
                            "generations=12", "replicates=2000"], tmp_path)
    assert rows[1]["theory_param_error"] == pytest.approx(theory.one_round_risk([10.0], [bias], 0.1, 1.0, 100))
    assert within(rows[1], "param_error")
    stationary = theory.stationary_risk(bias**2, 1, 0.1, 1.0, 100)
    assert abs(rows[12]["param_error"] - stationary) <= 4 * rows[12]["param_error_se"] + 0.05 * stationary


def test_resume_is_exact(tmp_path):
    args = GAUSS + ["policy=verify_accumulate", "verifier=noisy_oracle", "verifier.reliability=0.5", "replicates=50"]
    full = run_cfg(args + ["generations=5"], tmp_path / "full")
    run_cfg(args + ["generations=2"], tmp_path / "part")
    assert strip_wall(run_cfg(args + ["generations=5"], tmp_path / "part")) == strip_wall(full)


@pytest.mark.parametrize("override,message", [
    ("data.std=0", r"data\.std=0 is invalid"),
    ("data.n_real=1", r"data\.n_real=1 is invalid.*at least two samples"),
    ("generator.fit_variance=maybe", r"generator\.fit_variance='maybe' is invalid"),
    ("verifier.radius=0", r"verifier\.radius=0 is invalid"),
    ("policy.n_synthetic=1", r"policy\.n_synthetic=1 is too small"),
])
def test_bad_values(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        run_cfg(GAUSS + [override], tmp_path)
    assert not (tmp_path / "gen_000").exists()


def test_pictures(tmp_path):
    run_cfg(["generator=gaussian", "generations=1", "replicates=10"], tmp_path)
    assert (tmp_path / "gen_000" / "samples.png").stat().st_size > 1000
    assert (tmp_path / "gen_001" / "samples.png").stat().st_size > 1000
    assert len(read_rows(tmp_path)) == 2


# ----- mix and fresh: the fixed points of docs/theory.md, checked by Monte Carlo --------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("policy", [["policy=mix"], ["policy=mix", "policy.real_fraction=0.1"],
                                    ["policy=mix", "policy.real_fraction=0.8", "policy.n_synthetic=60"],
                                    ["policy=fresh"], ["policy=fresh", "policy.n_fresh=20"]],
                         ids=["mix-0.5", "mix-0.1", "mix-0.8-repeats", "fresh", "fresh-20"])
def test_mix_and_fresh_follow_their_closed_forms(tmp_path, policy):
    rows = run_cfg(["generator=gaussian", "verifier=none", "replicates=2000", "generations=50", "samples_every=0",
                    "progress=false"] + policy, tmp_path)
    for t in (10, 25, 50):
        assert within(rows[t], "variance") and within(rows[t], "param_error"), rows[t]
    summary = __import__("json").loads((tmp_path / "summary.json").read_text())
    stationary = summary["theory_stationary_variance"]
    assert abs(rows[50]["theory_variance"] - stationary) < 1e-6  # generation 50 is at the fixed point
    assert abs(rows[50]["variance"] - stationary) <= 3 * rows[50]["variance_se"]
    assert rows[50]["variance"] > 0.9  # where replace has collapsed below 0.7 (test_replace_follows_the_closed_forms)


def test_a_filtering_mix_reports_no_closed_form(tmp_path):
    rows = run_cfg(GAUSS + ["policy=mix", "verifier=oracle", "generations=2"], tmp_path)
    assert rows[2]["theory_variance"] is None and rows[2]["accept_rate"] is not None


@pytest.mark.slow  # 2,000 chains
@pytest.mark.parametrize("fit_variance", ["true", "false"])
def test_accumulate_follows_its_closed_forms(tmp_path, fit_variance):
    """policy=accumulate (real data + every synthetic set so far): the mean's error and the fitted variance stay bounded,
    each within 3 standard errors of theory.gaussian_accumulate at generations 1, 5 and 10 (2,000 chains)."""
    rows = run_cfg(GAUSS + ["policy=accumulate", "verifier=none", "generations=10", "replicates=2000",
                            f"generator.fit_variance={fit_variance}"], tmp_path)
    for t in (1, 5, 10):
        assert rows[t]["theory_param_error"] is not None and within(rows[t], "param_error"), rows[t]
        if fit_variance == "true":
            assert within(rows[t], "variance"), rows[t]
    closed = theory.gaussian_accumulate(10, 100, 100, 1.0, fit_variance == "true")
    assert [r["theory_param_error"] for r in rows] == pytest.approx([e for e, _ in closed])
    assert closed[10][0] < 1.0 / 100 * (1 + 3.1416**2 / 6)  # bounded, where replace grows by var/m a generation


def test_accumulate_closed_form_against_its_recursion_by_hand():
    """n = m = 1, sigma = 1, known variance: N_t = t + 1, so the error is sum_(i=1..t+1) 1 / i^2."""
    closed = theory.gaussian_accumulate(3, 1, 1, 1.0, fit_variance=False)
    assert [e for e, _ in closed] == pytest.approx([1.0, 1.25, 1.25 + 1 / 9, 1.25 + 1 / 9 + 1 / 16])
    # fitted variance, n = 2, m = 1: E[S_0] = 1, E[S_1] = E[S_0] (1 + (0 + 2/3) / 2) = 4/3, E[var_1] = 4/9
    closed = theory.gaussian_accumulate(1, 2, 1, 1.0, fit_variance=True)
    assert closed[0] == pytest.approx((0.5, 0.5)) and closed[1] == pytest.approx((0.5 + 0.5 / 9, 4 / 9))


@pytest.mark.slow
def test_accumulate_closed_forms_hold_to_generation_50(tmp_path):
    rows = run_cfg(GAUSS + ["policy=accumulate", "verifier=none", "generations=50", "replicates=2000"], tmp_path)
    for t in (25, 50):
        assert within(rows[t], "param_error") and within(rows[t], "variance"), rows[t]


# ----- soft curation by the exact tilt, and rejection sampling with the exact density ratio -----------------------
TILT = GAUSS + ["policy=verify", "verifier=noisy_oracle", "verifier.selection=tilt", "generator.fit_variance=false"]


@pytest.mark.slow  # end-to-end runs (the fast suite keeps the formulas' by-hand checks)
def test_tilt_reports_its_closed_form_and_refuses_what_it_cannot_do(tmp_path):
    """selection=tilt (per-candidate coins, p = exp(score / T)) reports theory.gaussian_tilt at every generation with a
    known variance, and none with a fitted one; a pool share, a zero temperature or an unbounded score are refused."""
    rows = run_cfg(TILT + ["generations=3", "replicates=50", "verifier.temperature=2.0"], tmp_path / "a")
    tau2 = 2.0 * (0.1 + theory.SQRT_2_OVER_PI) ** 2
    closed = theory.gaussian_tilt(3, 100, 100, tau2, bias=0.3)
    assert [r["theory_param_error"] for r in rows] == pytest.approx([e for e, _ in closed])
    assert 0.5 < rows[1]["accept_rate"] < 0.9
    fitted = run_cfg(TILT + ["generations=1", "replicates=50", "generator.fit_variance=true"], tmp_path / "b")
    assert fitted[1]["theory_param_error"] is None and fitted[1]["accept_rate"] is not None
    for bad, says in ((["verifier.keep_fraction=0.1"], "verifier.keep_fraction=null"),
                      (["verifier.temperature=0"], "would accept nothing"),
                      (["verifier.reliability=0.5"], "draws its own coins")):
        with pytest.raises(ConfigError, match=says):
            run_cfg(TILT + bad, tmp_path / "c")


@pytest.mark.slow  # end-to-end runs (the fast suite keeps the formulas' by-hand checks)
def test_oracle_ratio_fits_the_gaussian_study_only_and_reports_the_fresh_fit(tmp_path):
    rows = run_cfg(GAUSS + ["policy=verify", "verifier=oracle_ratio", "generations=2", "replicates=50"], tmp_path)
    assert rows[2]["theory_param_error"] == pytest.approx(1 / 100) and rows[2]["accept_rate"] == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="verifier=oracle_ratio does not fit generator=linear"):
        run_cfg(["debug=linear", "verifier=oracle_ratio"], tmp_path / "l")


@pytest.mark.slow  # 2,000 chains, 50 generations
def test_tilt_follows_its_closed_form_to_generation_50(tmp_path):
    """The known-variance Gaussian retrained on its own samples tilted by the noisy oracle's reward (bias 0.3):
    within 3 standard errors of theory.gaussian_tilt at generations 1, 5, 10, 25 and 50 (2,000 chains)."""
    rows = run_cfg(TILT + ["generations=50", "replicates=2000"], tmp_path)
    for t in (1, 5, 10, 25, 50):
        assert within(rows[t], "param_error"), rows[t]
    summary = (tmp_path / "summary.json").read_text()
    assert "theory_stationary_param_error" in summary and "theory_tilt_factor" in summary


@pytest.mark.slow  # 2,000 chains x a pool of 5,000 each, 50 generations
def test_drs_with_the_exact_ratio_is_a_fit_on_fresh_truth(tmp_path):
    """verifier=oracle_ratio selection=drs: every generation is distributed as a fit on m fresh truth samples (the
    large-pool limit; keep_fraction=0.02 keeps the finite pool's bias under a standard error) at generations 1, 5,
    10, 25 and 50; with verify_accumulate, as a fit on n + t m."""
    args = GAUSS + ["verifier=oracle_ratio", "verifier.keep_fraction=0.02", "replicates=2000"]
    rows = run_cfg(args + ["policy=verify", "generations=50"], tmp_path / "v")
    for t in (1, 5, 10, 25, 50):
        assert within(rows[t], "param_error") and within(rows[t], "variance"), rows[t]
    rows = run_cfg(args + ["policy=verify_accumulate", "generations=10"], tmp_path / "a")
    for t in (1, 5, 10):
        assert rows[t]["theory_param_error"] == pytest.approx(1 / (100 + 100 * t))
        assert within(rows[t], "param_error") and within(rows[t], "variance"), rows[t]


# ----- accumulate_subsample: the pool's second moments close ---------------------------------------------------
def test_accumulate_subsample_closed_form_by_hand():
    """n = 1, m = 1, known variance sigma = 1. Generation 1: the pool is the real sample (error e0, E e0^2 = 1) and one
    synthetic sample e0 + z; the subsample of one picks either: M_1 = (1 + 2) / 2. Fitted variance of one sample: 0."""
    closed = theory.gaussian_accumulate_subsample(1, 1, 1, 1.0, fit_variance=False)
    assert [v for row in closed for v in row] == pytest.approx([1.0, 1.0, 1.5, 1.0])
    # n = 2, m = 2, fitted: pool = 2 real (D = 1, C = 0) + 2 synthetic (D = 1/2 + 1/2, C = 1/2; with the real ones
    # 1/2); diag = 4, pairs = 2*1*1/2 + 2*2*2*1/2 = 5, so M_1 = (4/4 + 5/12) / 2 = 17/24, E[var_1] = 1 - 17/24
    closed = theory.gaussian_accumulate_subsample(1, 2, 2, 1.0, fit_variance=True)
    assert closed[1] == pytest.approx((17 / 24, 7 / 24))


@pytest.mark.slow  # 2,000 chains, 50 generations
@pytest.mark.parametrize("fit_variance", ["true", "false"])
def test_accumulate_subsample_follows_its_closed_form(tmp_path, fit_variance):
    rows = run_cfg(GAUSS + ["policy=accumulate_subsample", "verifier=none", "generations=50", "replicates=2000",
                            f"generator.fit_variance={fit_variance}"], tmp_path)
    for t in (1, 5, 10, 25, 50):
        assert rows[t]["theory_param_error"] is not None and within(rows[t], "param_error"), rows[t]
        if fit_variance == "true":
            assert within(rows[t], "variance"), rows[t]
