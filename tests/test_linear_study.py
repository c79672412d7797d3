"""The linear study against the closed-form theory (fast: batched replicates, seconds)."""
import math

import numpy as np
import pytest

from collapselab import theory

from .conftest import run_cfg


def test_monte_carlo_matches_one_round_formula(tmp_path):
    _check_one_round(tmp_path, 0.3, 0.1)


@pytest.mark.slow
@pytest.mark.parametrize("bias,radius", [(0.0, 0.1), (0.6, 0.3)])
def test_monte_carlo_matches_one_round_formula_elsewhere(tmp_path, bias, radius):
    _check_one_round(tmp_path, bias, radius)


def _check_one_round(tmp_path, bias: float, radius: float) -> None:
    rows = run_cfg(["generator=linear", "verifier=noisy_oracle", f"verifier.bias={bias}", f"verifier.radius={radius}",
                    "policy=verify", "generations=1", "replicates=2000", "keep_synthetic=false", "samples_every=0"], tmp_path)
    g1 = rows[1]
    assert g1["theory_param_error"] is not None
    assert abs(g1["param_error"] - g1["theory_param_error"]) < 4 * g1["param_error_se"]
    # generation 0 is plain OLS: sigma^2 tr((X^T X)^-1)
    assert abs(rows[0]["param_error"] - rows[0]["theory_param_error"]) < 4 * rows[0]["param_error_se"]


@pytest.mark.slow
def test_long_run_converges_to_the_verifier_centre(tmp_path):
    rows = run_cfg(["generator=linear", "verifier=noisy_oracle", "verifier.bias=0.3", "verifier.radius=0.1",
                    "policy=verify", "generations=20", "replicates=500", "keep_synthetic=false", "samples_every=0"], tmp_path)
    m2 = theory.contraction_factor(0.1)
    floor = 8 * m2 / (100 * (1 - m2**2))  # stationary E||theta_t - theta_c||^2
    late_centre = np.mean([r["center_error"] for r in rows[10:]])
    late_param = np.mean([r["param_error"] for r in rows[10:]])
    assert late_centre == pytest.approx(floor, rel=0.15)
    assert late_param == pytest.approx(theory.stationary_risk(0.09, 8, 0.1), rel=0.15)
    # the paper's shape: a near-term gain at generation 1, then the reversal above the real-only error
    assert rows[1]["param_error"] < rows[0]["param_error"] < late_param


def test_oracle_falls_and_stays_down(tmp_path):
    rows = run_cfg(["generator=linear", "verifier=oracle", "policy=verify", "generations=10", "replicates=300",
                    "keep_synthetic=false", "samples_every=0"], tmp_path)
    errs = [r["param_error"] for r in rows]
    assert max(errs[2:]) < 0.5 * errs[0]
    assert np.mean(errs[5:]) == pytest.approx(theory.stationary_risk(0.0, 8, 0.1), rel=0.15)


def test_replace_grows_by_d_sigma2_over_n(tmp_path):
    _check_replace_growth(tmp_path, "singular", 8 / 100)


@pytest.mark.slow
def test_replace_grows_by_d_sigma2_over_n_minus_d_minus_1_on_gaussian_covariates(tmp_path):
    _check_replace_growth(tmp_path, "gaussian", 8 / (100 - 8 - 1))


def _check_replace_growth(tmp_path, design: str, slope: float) -> None:
    rows = run_cfg(["generator=linear", f"generator.design={design}", "verifier=none", "policy=replace",
                    "generations=12", "replicates=400", "keep_synthetic=false", "samples_every=0"], tmp_path)
    g = np.arange(len(rows))
    fit = np.polyfit(g, [r["param_error"] for r in rows], 1)[0]
    assert fit == pytest.approx(slope, rel=0.1)
    assert rows[12]["theory_param_error"] == pytest.approx(rows[0]["theory_param_error"] + 12 * slope)


@pytest.mark.slow
def test_accumulate_stays_bounded(tmp_path):
    rows = run_cfg(["generator=linear", "verifier=none", "policy=accumulate", "generations=20", "replicates=400",
                    "keep_synthetic=false", "samples_every=0"], tmp_path)
    errs = np.array([r["param_error"] for r in rows])
    excess = errs[0]  # the one-generation excess of a fit on n fresh samples is at most the real-only error here
    assert errs.max() < math.pi**2 / 6 * excess * 1.5
    late_slope = np.polyfit(np.arange(10, 21), errs[10:], 1)[0]
    assert abs(late_slope) < 0.1 * 8 / 100  # far below replace's d sigma^2 / n per generation
    assert rows[20]["n_train"] == 100 + 20 * 800


def test_same_seed_same_numbers_and_seed_matters(tmp_path):
    args = ["generator=linear", "generations=3", "replicates=50", "verifier.reliability=0.5", "samples_every=0"]
    a = run_cfg(args, tmp_path / "a")
    b = run_cfg(args, tmp_path / "b")
    c = run_cfg(args + ["seed=1"], tmp_path / "c")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("wall_s", "time")} for r in rows]  # noqa: E731
    assert strip(a) == strip(b)
    assert strip(a) != strip(c)


@pytest.mark.slow
def test_reliability_keeps_the_amount_but_weakens_the_filter(tmp_path):
    full = run_cfg(["generator=linear", "verifier=oracle", "generations=1", "replicates=1000"], tmp_path / "f")
    coin = run_cfg(["generator=linear", "verifier=oracle", "verifier.reliability=0", "generations=1",
                    "replicates=1000"], tmp_path / "c")
    assert coin[1]["accept_rate"] == pytest.approx(full[1]["accept_rate"], abs=0.02)
    # a coin filter is no filter: generation 1 behaves like unfiltered resampling
    unfiltered = theory.one_round_risk(np.ones(1), [0.0], float("inf"))  # sanity of the helper
    assert unfiltered > 0
    assert coin[1]["param_error"] > 2 * full[1]["param_error"]


@pytest.mark.slow  # 2,000 chains
@pytest.mark.parametrize("design", ["singular", "gaussian"])
def test_accumulate_follows_its_closed_form(tmp_path, design):
    """policy=accumulate: theory_param_error at every generation, within 3 standard errors of the simulation."""
    rows = run_cfg(["generator=linear", f"generator.design={design}", "verifier=none", "policy=accumulate",
                    "generations=10", "replicates=2000"], tmp_path)
    for r in rows:
        assert r["theory_param_error"] is not None
        assert abs(r["param_error"] - r["theory_param_error"]) <= 3 * r["param_error_se"], r


def test_mix_closed_form_by_hand():
    """One direction: B_1 = E0 + sigma^2 q^2 / m (the real fit's error, plus the synthetic share's noise shrunk by q);
    the fixed point B* = E0 + sigma^2 q^2 / (m (1 - q^2)). Reported on the singular design when the real share is
    whole copies of the real set, else not (the slow test below)."""
    mu, m, c = 3.0, 50, 2
    q = m / (c * mu * mu + m)
    assert theory.linear_mix([mu], 1, m, c) == pytest.approx(1 / mu**2 + q * q / m)
    p = 1 - q  # the fixed point: A* = E0, B* = E0 (p^2 + 2 p q) / (1 - q^2) + (q^2 / m) / (1 - q^2)
    assert theory.linear_mix([mu], 500, m, c) == pytest.approx(
        (p * p + 2 * p * q) / (1 - q * q) / mu**2 + q * q / m / (1 - q * q))


@pytest.mark.slow
def test_mix_closed_form_is_reported_where_it_applies(tmp_path):
    rows = run_cfg(["generator=linear", "verifier=none", "policy=mix", "generations=1", "replicates=20"], tmp_path / "a")
    assert rows[1]["theory_param_error"] is not None and rows[1]["n_train"] == 800  # 400 real (4 copies) + 400
    rows = run_cfg(["generator=linear", "verifier=none", "policy=mix", "policy.real_fraction=0.2", "generations=1",
                    "replicates=20"], tmp_path / "b")
    assert rows[1]["theory_param_error"] is None  # 160 real rows: a subsample of the real design


@pytest.mark.slow  # 2,000 chains
@pytest.mark.parametrize("n_synthetic", ["null", "25"])
def test_mix_follows_its_closed_form(tmp_path, n_synthetic):
    """policy=mix on the singular design (4 and 2 copies of the real set beside the synthetic share): within 3 standard
    errors at generations 1, 5 and 10 (2,000 chains)."""
    rows = run_cfg(["generator=linear", "verifier=none", "policy=mix", f"policy.n_synthetic={n_synthetic}",
                    "generations=10", "replicates=2000", "seed=1"], tmp_path)
    for t in (1, 5, 10):
        assert abs(rows[t]["param_error"] - rows[t]["theory_param_error"]) <= 3 * rows[t]["param_error_se"], rows[t]
