"""Closed-form theory against exact numerical integration and scipy."""
import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm, truncnorm

from collapselab import theory


def exact_one_direction(mu: float, delta: float, r: float, sigma: float = 1.0, n: int = 100) -> float:
    """E over the generation-0 error e ~ N(0, sigma^2/mu^2) of the exact one-round squared error."""
    w = r + sigma * np.sqrt(2 / np.pi)
    s0 = sigma / mu

    def integrand(e: float) -> float:
        a, b = (delta - w - e) / sigma, (delta + w - e) / sigma
        m, v = truncnorm.stats(a, b, moments="mv")
        return ((e + sigma * m) ** 2 + sigma**2 * v / n) * norm.pdf(e, scale=s0)

    return integrate.quad(integrand, -8 * s0, 8 * s0, epsabs=1e-12, limit=200)[0]


def test_truncated_moments_match_scipy():
    for a, b in [(-0.3, 1.2), (-2.0, 0.5), (0.1, 3.0), (-0.9, 0.9)]:
        m1, m2, m3 = theory.truncated_normal_moments(a, b)
        mean, var, skew = truncnorm.stats(a, b, moments="mvs")
        assert m1 == pytest.approx(float(mean), rel=1e-9, abs=1e-12)
        assert m2 == pytest.approx(float(var), rel=1e-9)
        assert m3 == pytest.approx(float(skew) * float(var) ** 1.5, rel=1e-7, abs=1e-12)


def test_paper_reference_value():
    assert theory.one_round_risk([5.0], [0.6], 0.3) == pytest.approx(0.16795, abs=2e-5)
    assert theory.one_round_risk([5.0], [0.0], 0.05) == pytest.approx(0.00407, abs=2e-5)


@pytest.mark.parametrize("mu,delta,r", [(5.0, 0.6, 0.3), (5.0, 0.0, 0.05), (8.0, 0.3, 0.1), (12.0, -0.4, 0.5),
                                         (10.0, 0.2, 0.01)])
def test_one_round_within_one_percent_of_integration(mu, delta, r):
    approx = theory.one_round_risk([mu], [delta], r)
    exact = exact_one_direction(mu, delta, r)
    assert approx == pytest.approx(exact, rel=0.01)


def test_one_round_sums_directions():
    mu, off = np.array([5.0, 9.0, 11.0]), np.array([0.1, -0.2, 0.3])
    total = theory.one_round_risk(mu, off, 0.2)
    parts = sum(theory.one_round_risk([m], [o], 0.2) for m, o in zip(mu, off))
    assert total == pytest.approx(parts, rel=1e-12)


def test_contraction_and_stationary_values():
    assert theory.contraction_factor(0.1) == pytest.approx(0.241, abs=5e-4)
    assert theory.contraction_factor(0.5) == pytest.approx(0.446, abs=5e-4)
    assert theory.contraction_factor(2.0) == pytest.approx(0.955, abs=5e-4)
    m2 = theory.contraction_factor(0.1)
    assert theory.stationary_risk(0.09, 8, 0.1) == pytest.approx(0.09 + 8 * m2 / (100 * (1 - m2**2)), rel=1e-12)
    assert theory.stationary_risk(0.0, 8, 0.1) == pytest.approx(0.0205, abs=5e-4)


def test_no_filter_limit_is_fresh_noise_plus_real_error():
    mu = np.array([4.0, 7.0])
    assert theory.one_round_risk(mu, [0.0, 0.0], float("inf"), n_accept=50) == pytest.approx(
        2 / 50 + np.sum(mu**-2.0), rel=1e-12)
    assert theory.real_only_risk(mu) == pytest.approx(np.sum(mu**-2.0))
    assert theory.replace_growth(8, 100) == pytest.approx(0.08)
    assert theory.replace_growth(8, 100, design="gaussian") == pytest.approx(8 / 91)


def test_accumulate_growth_by_hand_and_against_the_literature():
    from collapselab.theory import accumulate_growth

    # singular design, one direction with mu = 1, one sample a generation: 1/(1+1)^2, then + 1/(1+2)^2
    assert accumulate_growth([1.0], 1, 1, 1) == pytest.approx(0.25)
    assert accumulate_growth([1.0], 2, 1, 1) == pytest.approx(0.25 + 1 / 9)
    # Gaussian design, n_real = n = 100, d = 8: the total error within 3% of Gerstgrasser et al.'s
    # d sigma^2 / (T - d - 1) sum_(i=1..t+1) 1/i^2 (their design is one fixed X relabelled every round, so every
    # round's denominator is T - d - 1; here each round draws new rows and N_s grows, 5-6% less growth)
    for t in (1, 5, 10):
        ours = 8 / 91 + accumulate_growth([1.0] * 8, t, 100, 100, design="gaussian")
        theirs = 8 / 91 * sum(1 / i**2 for i in range(1, t + 2))
        assert ours == pytest.approx(theirs, rel=0.03)
    assert accumulate_growth([1.0] * 8, 10_000, 100, 100, design="gaussian") < 8 / 91 * (3.1416**2 / 6 - 1)


# ----- the paper's one-dimensional toolkit, soft curation's tilt ----------------------------------------------
@pytest.mark.parametrize("a, b", [(-1.0, 1.0), (-0.3, 1.2), (0.2, 2.5), (-2.0, -0.1)])
def test_the_papers_toolkit_is_the_d1_case_of_one_round_risk(a, b):
    """toolkit_mse(a, b, n1) = one_round_risk at d = 1 with no generation-0 error (mu -> inf), centre offset
    (a + b) / 2, half-width (b - a) / 2 and n1 P kept; and both equal the integral of the kept mean's error."""
    n1 = 400
    P = norm.cdf(b) - norm.cdf(a)
    w = (b - a) / 2
    d1 = theory.one_round_risk([np.inf], [(a + b) / 2], w - np.sqrt(2 / np.pi), 1.0, n1 * P)
    mse = theory.toolkit_mse(a, b, n1)
    assert mse == pytest.approx(d1, rel=1e-12)
    mean = integrate.quad(lambda y: y * norm.pdf(y), a, b)[0] / P
    var = integrate.quad(lambda y: y * y * norm.pdf(y), a, b)[0] / P - mean**2
    assert mse == pytest.approx(mean**2 + var / (n1 * P), rel=1e-9)
    assert theory.toolkit_mse(-np.inf, np.inf, n1) == pytest.approx(1 / n1)  # no window: the unfiltered 1/n1


def test_tilt_recursion_by_hand_and_its_fixed_point():
    """tau^2 = sigma^2 = 1: kappa = 1/2. Centred (bias 0), n = m = 1: E[e^2] = 1, 1/4 + 1/2, ... -> (1/2) / (3/4)."""
    assert theory.tilt_factor(1.0) == 0.5
    closed = theory.gaussian_tilt(3, 1, 1, 1.0)
    assert [e2 for e2, _ in closed] == pytest.approx([1.0, 0.75, 0.6875, 0.671875])
    assert theory.gaussian_tilt(200, 1, 1, 1.0)[-1][0] == pytest.approx(theory.gaussian_tilt_stationary(1, 1.0))
    assert theory.gaussian_tilt_stationary(1, 1.0) == pytest.approx(2 / 3)
    # a biased centre: the mean error tends to the bias, E[e^2] to bias^2 + the noise floor
    far = theory.gaussian_tilt(400, 100, 100, 0.5, bias=0.3)
    assert far[-1][1] == pytest.approx(0.3) and far[-1][0] == pytest.approx(
        theory.gaussian_tilt_stationary(100, 0.5, bias=0.3))


def test_the_tilted_gaussian_is_the_product_of_densities():
    """N(mu, sigma^2) exp(-(y - c)^2 / (2 tau^2)), normalised by integration: mean kappa mu + (1 - kappa) c, variance
    kappa sigma^2 (what gaussian_tilt's recursion uses)."""
    mu, c, s, tau2 = 0.4, -0.2, 1.3, 0.7
    f = lambda y: norm.pdf(y, mu, s) * np.exp(-(y - c) ** 2 / (2 * tau2))  # noqa: E731
    Z = integrate.quad(f, -20, 20)[0]
    m = integrate.quad(lambda y: y * f(y), -20, 20)[0] / Z
    v = integrate.quad(lambda y: (y - m) ** 2 * f(y), -20, 20)[0] / Z
    k = theory.tilt_factor(tau2, s)
    assert m == pytest.approx(k * mu + (1 - k) * c, rel=1e-9) and v == pytest.approx(k * s * s, rel=1e-9)


def test_true_ratio_is_a_fit_on_fresh_truth_samples():
    assert theory.gaussian_true_ratio(3, 100, 50, 2.0) == pytest.approx((4 / 50, 4 * 49 / 50))
    assert theory.gaussian_true_ratio(3, 100, 50, 2.0, fit_variance=False, accumulate=True) == pytest.approx((4 / 250, 4))
    assert theory.gaussian_true_ratio(0, 100, 50, 1.0) == pytest.approx((1 / 100, 99 / 100))
